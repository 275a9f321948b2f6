"""scikit-learn's digits: 1,797 grey 8x8 images of handwritten digits, ten classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch import Tensor
from typing_extensions import override

from litlab.baselines import classifiers, fit_and_score, multiclass_scores
from litlab.data.base import TensorDataModule
from litlab.data.split import Folds, check_split, split_rows
from litlab.errors import ConfigError

PIXELS = [f"p{i}" for i in range(64)]  # an 8x8 image as a row, row by row


class DigitsDataModule(TensorDataModule):
    """Images as float32 x (N, 1, 8, 8), load_digits' 0..16 ink divided by 16, and labels
    y (N,) int64; a seeded stratified split (or folds). `shift` moves each training batch
    by up to that many pixels."""

    task = "multiclass"
    num_features = 64
    num_outputs = 10
    input_columns = PIXELS

    def __init__(
        self,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        random_state: int = 0,
        batch_size: int | None = 64,
        shift: int = 0,
        folds: Folds = None,
        fold: int = 0,
    ):
        super().__init__(batch_size, seed=random_state)
        if not 0 <= shift < 4:
            raise ValueError(f"shift={shift}: must be 0 (off) to 3 pixels")
        check_split(1797, val_fraction, test_fraction, folds, classes=10)
        self.split = dict(val_fraction=val_fraction, test_fraction=test_fraction, folds=folds)
        self.split |= dict(seed=random_state, fold=fold)
        self.shift = shift

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train:
            return
        digits = load_digits()
        x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
        y = torch.tensor(digits.target, dtype=torch.long)
        parts = split_rows(len(x), **self.split, labels=digits.target)
        self.train, self.val, self.test = ((x[rows], y[rows]) for rows in parts)

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.num_outputs}

    def inputs(self, frame: pd.DataFrame) -> Tensor:
        values = frame[PIXELS].to_numpy(dtype=np.float32) / 16.0  # as the training images
        return torch.from_numpy(values).reshape(-1, 1, 8, 8)

    def read_rows(self, path: Path) -> pd.DataFrame:
        return read_images(path)

    def baselines(self) -> dict[str, float]:
        return fit_and_score(classifiers(), self.train, self.test, multiclass_scores)

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        batch = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.shift == 0 or self.trainer is None or not self.trainer.training:
            return batch
        x, y = batch
        dx, dy = (int(v) for v in torch.randint(-self.shift, self.shift + 1, (2,)))
        return shifted(x, dx, dy), y


def shifted(x: Tensor, dx: int, dy: int) -> Tensor:
    """Images (B, C, H, W) moved dx pixels right and dy down, blank where they left."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def read_images(path: str | Path) -> pd.DataFrame:
    """Rows of PIXELS in load_digits' 0..16, from a PNG (ink made high) or a CSV of 64 a row."""
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
