"""After training: a checkpoint's test metrics again (`eval`) and predictions for new rows
(`predict`, or `Predictor` from Python). A checkpoint carries everything they need: the
resolved config, the weights and the data encoding, all loadable with weights_only=True."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from omegaconf import OmegaConf

from litlab.callbacks import KEY
from litlab.config import Composed, ConfigError, locate
from litlab.data.tabular import TableEncoder
from litlab.train import build


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path`, refused with one clear error when it is not one of ours.

    `weights_only=True`: loading a file must not run code from it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError([f"{file}: no such checkpoint file"])
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
    ) as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError([f"{file}: not a readable checkpoint ({reason})"]) from None
    if not isinstance(checkpoint, dict) or KEY not in checkpoint:
        raise ConfigError([f"{file}: not a litlab checkpoint (no stored config)"])
    return checkpoint


def _composed(checkpoint: dict[str, Any]) -> Composed:
    stored = checkpoint[KEY]
    return Composed(OmegaConf.create(stored["config"]), {}, stored["choices"])


def evaluate_checkpoint(path: str | Path) -> dict[str, float]:
    """Test metrics of the checkpoint on the test split of the data it was trained on."""
    checkpoint = load_checkpoint(path)
    composed = _composed(checkpoint)
    fold = checkpoint[KEY]["fold"]
    datamodule = build(composed, "data", **({} if fold is None else {"fold": fold}))
    datamodule.setup("test")
    module = _module(composed, datamodule.num_features, datamodule.module_kwargs())
    module.load_state_dict(checkpoint["state_dict"])
    trainer = L.Trainer(
        accelerator=composed.cfg.trainer.get("accelerator", "auto"),
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (results,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in sorted(results.items())}


def _module(
    composed: Composed, in_features: int, data_kwargs: dict[str, float]
) -> L.LightningModule:
    cfg = composed.cfg
    net = build(composed, "model", in_features=in_features, out_features=1)
    plain = OmegaConf.to_container
    scheduler = plain(cfg.scheduler) if cfg.scheduler else None
    return build(
        composed,
        "module",
        net=net,
        optimizer=plain(cfg.optimizer),
        scheduler=scheduler,
        **data_kwargs,
    )


class Predictor:
    """Predictions of a trained network for new rows, encoded as its training rows were.

    >>> Predictor.from_checkpoint("runs/diabetes/.../checkpoints/best.ckpt").predict(frame)
    """

    def __init__(
        self,
        module: L.LightningModule,
        columns: list[str],
        encoder: TableEncoder | None,
        target: str | None,
    ):
        self.module, self.columns, self.encoder, self.target = (
            module.eval(),
            columns,
            encoder,
            target,
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Predictor:
        checkpoint = load_checkpoint(path)
        composed = _composed(checkpoint)
        data_class = locate(composed.cfg.data._target_)
        state = checkpoint.get(data_class.__qualname__) or {}
        if state.get("encoder"):
            encoder = TableEncoder(**state["encoder"])
            columns, in_features, target = (
                [*encoder.numeric, *encoder.categorical],
                len(encoder.columns),
                state["target"],
            )
        else:  # points: the two coordinates
            encoder, columns, in_features, target = (
                None,
                ["x1", "x2"],
                data_class.num_features,
                None,
            )
        module = _module(composed, in_features, {})
        module.load_state_dict(checkpoint["state_dict"])
        return cls(module, columns, encoder, target)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with a `prediction` column (and `probability` of class 1 for classifiers)."""
        self._check_columns(frame)
        if self.encoder is not None:
            x = torch.from_numpy(self.encoder.transform(frame))
        else:
            x = torch.tensor(frame[self.columns].to_numpy(dtype=float), dtype=torch.float32)
        out = frame.copy()
        with torch.no_grad():
            if self.module.task == "binary":
                out["probability"] = self.module.predict_proba(x).numpy().ravel()
                out["prediction"] = self.module.predict(x).numpy().ravel()
            else:
                out["prediction"] = self.module.predict(x).numpy().ravel()
        return out

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in self.columns and c != self.target]
        if missing or extra:
            problems = [
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(extra)}" if extra else "",
            ]
            raise ConfigError(
                [
                    f"input columns: {'; '.join(p for p in problems if p)}; "
                    f"the network was trained on: {', '.join(self.columns)}"
                ]
            )
