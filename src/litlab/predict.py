"""After training: a checkpoint's test metrics again (`eval`) and predictions for new rows
(`predict`, or `Predictor` from Python). A checkpoint carries everything they need: the
resolved config, the weights and the data encoding, all loadable with weights_only=True."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from PIL import Image

from litlab.checkpoints import KEY, load_checkpoint
from litlab.config import Composed, ConfigError
from litlab.data.tabular import TableEncoder
from litlab.signatures import locate
from litlab.train import build, build_module

PIXELS = [f"p{i}" for i in range(64)]  # an 8x8 image as a row, row by row


def _pixels(frame: pd.DataFrame) -> torch.Tensor:
    values = frame[PIXELS].to_numpy(dtype=np.float32) / 16.0  # as the training images
    return torch.from_numpy(values).reshape(-1, 1, 8, 8)


def read_images(path: str | Path) -> pd.DataFrame:
    """8x8 images as rows of PIXELS in load_digits' 0..16: a PNG of any size (one image,
    grey, resized, ink made high as in load_digits), or a CSV of 64 values a row."""
    file = Path(path)
    if file.suffix.lower() == ".png":
        grey = np.asarray(Image.open(file).convert("L"), dtype=np.float32) / 255
        ink = 1 - grey if grey.mean() > 0.5 else grey  # dark strokes on a light page
        small = Image.fromarray((ink * 255).astype(np.uint8)).resize((8, 8), Image.Resampling.BOX)
        return pd.DataFrame(
            [np.asarray(small, dtype=np.float32).ravel() / 255 * 16], columns=PIXELS
        )
    rows = pd.read_csv(file, header=None)
    if rows.shape[1] != 64:
        raise ConfigError([f"{file}: {rows.shape[1]} values a row; an 8x8 image is 64"])
    rows = rows[pd.to_numeric(rows[0], errors="coerce").notna()].astype(float)  # drop a header
    if len(rows) == 0 or not rows.to_numpy().min() >= 0 or not rows.to_numpy().max() <= 16:
        raise ConfigError([f"{file}: pixel values must be 0 to 16, as in load_digits"])
    rows.columns = PIXELS
    return rows.reset_index(drop=True)


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
    module = build_module(
        composed, datamodule.num_features, datamodule.num_outputs, datamodule.module_kwargs()
    )
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


class Predictor:
    """Predictions of a trained network for new rows, encoded as its training rows were.

    >>> Predictor.from_checkpoint("runs/diabetes/.../checkpoints/best.ckpt").predict(frame)
    """

    def __init__(
        self,
        module: L.LightningModule,
        columns: list[str],
        inputs: Callable[[pd.DataFrame], torch.Tensor],
        target: str | None = None,
    ):
        self.module, self.columns, self.inputs, self.target = module.eval(), columns, inputs, target

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Predictor:
        checkpoint = load_checkpoint(path)
        composed = _composed(checkpoint)
        data_class = locate(composed.cfg.data._target_)
        state = checkpoint.get(data_class.__qualname__) or {}
        target, kwargs = None, {}
        if state.get("encoder"):  # a table: its stored encoding
            encoder = TableEncoder(**state["encoder"])
            columns, in_features = [*encoder.numeric, *encoder.categorical], len(encoder.columns)
            inputs, target = (lambda f: torch.from_numpy(encoder.transform(f))), state["target"]
        elif data_class.task == "multiclass":  # images: pixel columns in load_digits' 0..16
            columns, in_features = PIXELS, data_class.num_features
            inputs, kwargs = _pixels, {"num_classes": data_class.num_outputs}
        else:  # points: the two coordinates
            columns, in_features = ["x1", "x2"], data_class.num_features
            inputs = lambda f: torch.tensor(f[["x1", "x2"]].to_numpy(float), dtype=torch.float32)  # noqa: E731
        module = build_module(composed, in_features, data_class.num_outputs, kwargs)
        module.load_state_dict(checkpoint["state_dict"])
        return cls(module, columns, inputs, target)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with a `prediction` column, and the `probability` of class 1 (two
        classes) or of the predicted class (more)."""
        self._check_columns(frame)
        x = self.inputs(frame)
        out = frame.copy()
        with torch.no_grad():
            out["prediction"] = self.module.predict(x).numpy().ravel()
            if self.module.task == "binary":
                out["probability"] = self.module.predict_proba(x).numpy().ravel()
            elif self.module.task == "multiclass":
                out["probability"] = self.module.predict_proba(x).max(dim=1).values.numpy()
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
