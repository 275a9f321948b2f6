"""After training: a checkpoint's test metrics again (`eval`) and predictions for new rows
(`predict`, or `Predictor` from Python). A checkpoint carries everything they need: the
resolved config, the weights and the data encoding, all loadable with weights_only=True.
The data module says how raw rows become inputs; the LightningModule, what columns a
prediction has."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import lightning as L
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from litlab.builders import build_data, build_module, build_node
from litlab.checkpoints import CHECKPOINT_SECTION, check_fits, load_checkpoint, write_atomically
from litlab.config import ConfigError, SourcedConfig, stored_config
from litlab.data.base import TensorDataModule
from litlab.devices import runs_on_gpu
from litlab.trust import target_errors

# OWASP's list for CSV injection: a spreadsheet runs a cell that starts so as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 256  # rows (images) turned into inputs and predicted at a time
OUTPUT_ALLOWED = (
    "predictions go to a CSV file of their own, outside any run's checkpoints/ folder "
    "(e.g. predictions.csv)"
)


def _composed(checkpoint: dict[str, Any], path: str | Path, trust: bool) -> SourcedConfig:
    """The config stored in the checkpoint at `path`; unless `trust`, refused if it names
    a target a stored config may not build (check.target_errors)."""
    stored = checkpoint[CHECKPOINT_SECTION]
    composed = stored_config(stored["config"], stored["choices"], str(path), trust)
    errors = target_errors(composed)
    if errors:
        raise ConfigError(errors)
    return composed


def _data_state(checkpoint: dict[str, Any], composed: SourcedConfig) -> dict[str, Any] | None:
    """What the data module saved in the checkpoint (Lightning files it by class name)."""
    name = str(composed.cfg.data._target_).rpartition(".")[2]
    return checkpoint.get(name) or None


def evaluate_checkpoint(
    path: str | Path, trust: bool = False, overrides: list[str] | None = None
) -> dict[str, float]:
    """Test metrics of the checkpoint on the test split of the data it was trained on,
    on whatever this machine has (`overrides`: trainer key=value words, e.g.
    `trainer.accelerator=cpu`); `trust` lets its stored config build any target."""
    checkpoint = load_checkpoint(path)
    composed = _composed(checkpoint, path, trust)
    stored = _data_state(checkpoint, composed)
    datamodule = build_data(composed, checkpoint[CHECKPOINT_SECTION]["fold"], stored)
    module = build_module(composed, datamodule)
    check_fits(module, checkpoint["state_dict"], Path(path))
    module.load_state_dict(checkpoint["state_dict"])
    trainer = L.Trainer(
        **eval_placement(composed.cfg.trainer, overrides or []),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (results,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in sorted(results.items())}


def eval_placement(stored: DictConfig, words: list[str]) -> dict[str, Any]:
    """Where to evaluate: this machine's device (`auto`), not the one the run had (a GPU
    run is evaluated on a laptop), at the run's own precision, so the metrics are the
    run's; `words` (trainer.key=value) override the stored trainer node. A precision this
    machine cannot run (16-mixed without a GPU) falls back to 32-true, said in one line."""
    import torch

    overrides = _trainer_overrides(words)
    placement = {"accelerator": "auto", "devices": 1, "precision": stored.get("precision")}
    placement = {k: v for k, v in placement.items() if v is not None} | overrides
    on_gpu = runs_on_gpu(str(placement["accelerator"]), torch.cuda.is_available())
    if str(placement.get("precision")) in ("16-mixed", "16") and not on_gpu:
        print(
            f"litlab: trainer.precision={placement['precision']} needs a GPU, which this "
            "machine has not: evaluating at 32-true (metrics may differ slightly)"
        )
        placement["precision"] = "32-true"
    return placement


def _trainer_overrides(words: list[str]) -> dict[str, Any]:
    """`trainer.key=value` words as {key: value}; any other word is refused."""
    bad = [w for w in words if not w.startswith("trainer.") or "=" not in w]
    if bad:
        raise ConfigError(
            [
                f"{word} (command line): after the checkpoint only trainer.key=value "
                "overrides of its stored trainer node are taken (e.g. trainer.accelerator=cpu)"
                for word in bad
            ]
        )
    return OmegaConf.to_container(OmegaConf.from_dotlist(words))["trainer"] if words else {}


class Predictor:
    """Predictions of a trained network for new rows, encoded as its training rows were.

    >>> Predictor.from_checkpoint("runs/diabetes/.../checkpoints/best.ckpt").predict(frame)
    """

    def __init__(self, module: L.LightningModule, datamodule: TensorDataModule):
        self.module, self.datamodule = module.eval(), datamodule
        self.notes: list[str] = []  # what the last predict ignored or filled in

    @classmethod
    def from_checkpoint(cls, path: str | Path, trust: bool = False) -> Predictor:
        """The network of a checkpoint and its data module, which is not set up (no data
        file is read) but given the encoding stored in the checkpoint; `trust` lets its
        stored config build any target."""
        checkpoint = load_checkpoint(path)
        composed = _composed(checkpoint, path, trust)
        datamodule = build_node(composed, "data")
        state = _data_state(checkpoint, composed)
        if state:
            try:
                datamodule.load_state_dict(state)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ConfigError([f"{path}: its data state cannot be read ({exc!r})"]) from None
        module = build_module(composed, datamodule)
        check_fits(module, checkpoint["state_dict"], Path(path))
        module.load_state_dict(checkpoint["state_dict"])
        return cls(module, datamodule)

    @property
    def columns(self) -> list[str]:
        """The raw columns each row needs."""
        return self.datamodule.input_columns

    def read(self, path: str | Path) -> pd.DataFrame:
        """Rows to predict from a file, as the data module reads them (a CSV, a PNG)."""
        try:
            return self.datamodule.read_rows(Path(path))
        except ConfigError:  # the data module's own words
            raise
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            # EmptyDataError and a table's own refusals are ValueErrors too
            raise ConfigError([f"{path}: cannot be read as a CSV table ({exc})"]) from None

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the module's prediction columns (`prediction`, and for classes
        the `probability` of the second class (two) or of the predicted class (more)),
        and `problem`: why a row was not predicted, '' for the rows that were. Columns
        the network does not use are kept and ignored; `notes` says what was."""
        self.notes = self._check_columns(frame)
        problems, filled = self.datamodule.check_rows(frame)
        self.notes += filled
        ok = (problems == "").to_numpy()
        out = frame.copy()
        if ok.any():
            columns = self._predicted(frame[ok])
            for name, values in self.datamodule.decode(columns).items():
                column = pd.Series(values, index=frame.index[ok]).reindex(frame.index)
                out[name] = column.astype("Int64") if values.dtype.kind in "iu" else column
        out["problem"] = problems
        return out

    def _predicted(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The module's prediction columns for `frame`, CHUNK rows at a time: a folder
        of images is decoded a chunk at a time, never all at once. A data module with
        `probabilities_per_class` gets each class's probability too."""
        asked = (
            {"per_class": True}
            if getattr(self.datamodule, "probabilities_per_class", False)
            else {}
        )
        parts = [
            self.module.prediction_columns(
                self.datamodule.inputs(frame.iloc[i : i + CHUNK]), **asked
            )
            for i in range(0, len(frame), CHUNK)
        ]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _check_columns(self, frame: pd.DataFrame) -> list[str]:
        """Refuse rows without the network's columns; name the columns it ignores."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ConfigError(
                [
                    f"input columns: missing {', '.join(map(str, missing))}; "
                    f"the network was trained on: {', '.join(self.columns)}"
                ]
            )
        extra = [str(c) for c in frame.columns if c not in self.columns]
        return [f"ignored columns the network does not use: {', '.join(extra)}"] if extra else []


def check_output(checkpoint: Path, rows: Path, output: Path) -> None:
    """Refuse an OUTPUT that would overwrite what predict reads or a run keeps: the
    checkpoint, the INPUT file, any file in a run folder's checkpoints/ (a folder of that
    name beside a config.yaml)."""
    target = output.resolve()
    for what, path in (("the checkpoint itself", checkpoint), ("the INPUT file", rows)):
        if _same_file(target, path):
            raise ConfigError([f"OUTPUT {output}: is {what}; {OUTPUT_ALLOWED}"])
    for folder in target.parents:
        if folder.name == "checkpoints" and (folder.parent / "config.yaml").is_file():
            where = f"is in the run folder's checkpoints/ ({folder})"
            raise ConfigError([f"OUTPUT {output}: {where}; {OUTPUT_ALLOWED}"])


def _same_file(a: Path, b: Path) -> bool:
    """The same path once links are followed, or another name of the file (a hard link)."""
    if a == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def write_predictions(out: pd.DataFrame, path: Path, csv: dict[str, Any]) -> None:
    """`out` as a CSV file at `path` (`csv`: to_csv's options, as the rows came), text
    cells escaped for spreadsheets (`escape_formulas`). Written beside `path` and renamed
    over it, so a stop midway (SIGTERM) leaves the previous file whole."""
    escaped = escape_formulas(out)

    def write(file: IO[bytes]) -> None:
        # RFC 4180's line end (Python csv's own): with "\n" alone a cell holding a bare CR
        # goes out unquoted and a reader starts a new row there, which `\r=cmd` would use
        escaped.to_csv(file, index=False, lineterminator="\r\n", **csv)

    write_atomically(path, write)


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a quote before every text cell, and column name, that starts as a
    formula does (FORMULA_START): the input's text and the training file's class names
    reach a spreadsheet as text, never run. Numeric columns are left as they are."""
    out = frame.rename(columns=_escaped)
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if not pd.api.types.is_numeric_dtype(column):
            out.isetitem(i, column.map(_escaped))
    return out


def _escaped(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value
