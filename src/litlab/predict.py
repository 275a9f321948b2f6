"""After training: a checkpoint's test metrics again (`eval`) and predictions for new rows
(`predict`, or `Predictor` from Python). A checkpoint carries the resolved config, the
weights and the data encoding, all read as plain data (weights_only=True)."""

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
    """The checkpoint's stored config; unless `trust`, refused if it names a target a
    stored config may not build."""
    stored = checkpoint[CHECKPOINT_SECTION]
    composed = stored_config(stored["config"], stored["choices"], str(path), trust)
    if errors := target_errors(composed):
        raise ConfigError(errors)
    return composed


def _restore(
    path: str | Path, trust: bool, test: bool
) -> tuple[L.LightningModule, TensorDataModule, SourcedConfig]:
    """The network of a checkpoint, its data module (set up for its test split if `test`,
    else only given the stored encoding: no data file read) and its config."""
    checkpoint = load_checkpoint(path)
    composed = _composed(checkpoint, path, trust)
    # what the data module saved (Lightning files it by class name)
    state = checkpoint.get(str(composed.cfg.data._target_).rpartition(".")[2]) or None
    if test:
        datamodule = build_data(composed, checkpoint[CHECKPOINT_SECTION]["fold"], state)
    else:
        datamodule = build_node(composed, "data")
        try:
            if state:
                datamodule.load_state_dict(state)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError([f"{path}: its data state cannot be read ({exc!r})"]) from None
    module = build_module(composed, datamodule)
    check_fits(module, checkpoint["state_dict"], Path(path))
    module.load_state_dict(checkpoint["state_dict"])
    return module, datamodule, composed


def evaluate_checkpoint(
    path: str | Path, trust: bool = False, overrides: list[str] | None = None
) -> dict[str, float]:
    """Test metrics of the checkpoint on the test split it was trained with, on this
    machine (`overrides`: trainer.key=value words); `trust` lets its config build any target."""
    module, datamodule, composed = _restore(path, trust, test=True)
    trainer = L.Trainer(
        **eval_placement(composed.cfg.trainer, overrides or []),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (results,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in sorted(results.items())}


def eval_placement(stored: DictConfig, words: list[str]) -> dict[str, Any]:
    """This machine's device (`auto`) at the run's own precision, so the metrics are the
    run's, with `words` (trainer.key=value) on top; 16-mixed without a GPU falls back to
    32-true, said in one line."""
    import torch

    if bad := [w for w in words if not w.startswith("trainer.") or "=" not in w]:
        only = "after the checkpoint only trainer.key=value overrides of its stored trainer node"
        example = "are taken (e.g. trainer.accelerator=cpu)"
        raise ConfigError([f"{word} (command line): {only} {example}" for word in bad])
    placement = {"accelerator": "auto", "devices": 1, "precision": stored.get("precision")}
    placement = {k: v for k, v in placement.items() if v is not None}
    placement |= OmegaConf.to_container(OmegaConf.from_dotlist(words))["trainer"] if words else {}
    on_gpu = runs_on_gpu(str(placement["accelerator"]), torch.cuda.is_available())
    if str(placement.get("precision")) in ("16-mixed", "16") and not on_gpu:
        print(
            f"litlab: trainer.precision={placement['precision']} needs a GPU, which this "
            "machine has not: evaluating at 32-true (metrics may differ slightly)"
        )
        placement["precision"] = "32-true"
    return placement


class Predictor:
    """Predictions of a trained network for new rows, encoded as its training rows were:
    `Predictor.from_checkpoint("runs/diabetes/.../checkpoints/best.ckpt").predict(frame)`."""

    def __init__(self, module: L.LightningModule, datamodule: TensorDataModule):
        self.module, self.datamodule = module.eval(), datamodule
        self.notes: list[str] = []  # what the last predict ignored or filled in

    @classmethod
    def from_checkpoint(cls, path: str | Path, trust: bool = False) -> Predictor:
        """`trust` lets the checkpoint's stored config build any target."""
        module, datamodule, _ = _restore(path, trust, test=False)
        return cls(module, datamodule)

    def read(self, path: str | Path) -> pd.DataFrame:
        """Rows to predict from a file, as the data module reads them (a CSV, a PNG)."""
        try:
            return self.datamodule.read_rows(Path(path))
        except ConfigError:  # the data module's own words
            raise
        except (OSError, ValueError) as exc:  # pandas' ParserError is a ValueError
            raise ConfigError([f"{path}: cannot be read as a CSV table ({exc})"]) from None

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the module's prediction columns, and `problem`: why a row was not
        predicted ('' if it was). Columns the network does not use are kept; `notes` says so."""
        columns = self.datamodule.input_columns  # the raw columns each row needs
        if missing := [str(c) for c in columns if c not in frame.columns]:
            needed = f"the network was trained on: {', '.join(columns)}"
            raise ConfigError([f"input columns: missing {', '.join(missing)}; {needed}"])
        extra = ", ".join(str(c) for c in frame.columns if c not in columns)
        self.notes = [f"ignored columns the network does not use: {extra}"] if extra else []
        problems, filled = self.datamodule.check_rows(frame)
        self.notes += filled
        ok = (problems == "").to_numpy()
        out = frame.copy()
        if ok.any():
            for name, values in self.datamodule.decode(self._predicted(frame[ok])).items():
                column = pd.Series(values, index=frame.index[ok]).reindex(frame.index)
                out[name] = column.astype("Int64") if values.dtype.kind in "iu" else column
        out["problem"] = problems
        return out

    def _predicted(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The prediction columns, CHUNK rows at a time (a folder of images is never decoded
        at once); a data module with `probabilities_per_class` gets each class's too."""
        per_class = getattr(self.datamodule, "probabilities_per_class", False)
        asked, inputs = {"per_class": True} if per_class else {}, self.datamodule.inputs
        chunks = [frame.iloc[i : i + CHUNK] for i in range(0, len(frame), CHUNK)]
        parts = [self.module.prediction_columns(inputs(chunk), **asked) for chunk in chunks]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def check_output(checkpoint: Path, rows: Path, output: Path) -> None:
    """Refuse an OUTPUT over what predict reads or a run keeps: the checkpoint, the INPUT,
    a file in a run folder's checkpoints/ (a folder of that name beside a config.yaml)."""
    target = output.resolve()
    for what, path in (("the checkpoint itself", checkpoint), ("the INPUT file", rows)):
        same = path.exists() and target.exists() and os.path.samefile(target, path)  # hard links
        if same or target == path.resolve():
            raise ConfigError([f"OUTPUT {output}: is {what}; {OUTPUT_ALLOWED}"])
    for folder in target.parents:
        if folder.name == "checkpoints" and (folder.parent / "config.yaml").is_file():
            where = f"is in the run folder's checkpoints/ ({folder})"
            raise ConfigError([f"OUTPUT {output}: {where}; {OUTPUT_ALLOWED}"])


def write_predictions(out: pd.DataFrame, path: Path, csv: dict[str, Any]) -> None:
    """`out` as a CSV file at `path` (`csv`: to_csv's options, as the rows came), formulas
    escaped, written atomically: a stop midway leaves the previous file whole."""
    escaped = escape_formulas(out)

    def write(file: IO[bytes]) -> None:
        # RFC 4180's line end: with "\n" alone a cell holding a bare CR goes out unquoted and
        # a reader starts a new row there, which `\r=cmd` would use
        escaped.to_csv(file, index=False, lineterminator="\r\n", **csv)

    write_atomically(path, write)


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a quote before every text cell and column name that starts as a formula
    does (FORMULA_START), so a spreadsheet shows it as text; numbers are left as they are."""
    out = frame.rename(columns=_escaped)
    for i in range(out.shape[1]):
        if not pd.api.types.is_numeric_dtype(out.iloc[:, i]):
            out.isetitem(i, out.iloc[:, i].map(_escaped))
    return out


def _escaped(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value
