"""The lesson's data: two noisy concentric circles, class 0 outside, class 1 inside."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from sklearn.datasets import make_circles
from typing_extensions import override

from litlab.baselines import binary_scores, classifiers, fit_and_score
from litlab.data.base import TensorDataModule
from litlab.data.split import Folds, check_split, split_rows
from litlab.figures import data_scatter


class CirclesDataModule(TensorDataModule):
    """`make_circles` points as float32 `x` (N, 2) and labels `y` (N, 1).

    `holdout="split"`: a stratified train/val/test split by fractions (or by `folds`),
    seeded by `random_state`. `holdout="fresh"`: train on all `n_samples` points, as the
    lesson does, and validate and test on fresh draws of the same size from the same
    distribution (`random_state + 1` and `+ 2`).
    """

    task = "binary"
    num_features = 2
    input_columns: ClassVar[list[str]] = ["x1", "x2"]

    def __init__(
        self,
        n_samples: int = 500,
        noise: float = 0.2,
        factor: float = 0.3,
        random_state: int = 123,
        holdout: Literal["split", "fresh"] = "split",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int | None = None,
        folds: Folds = None,
        fold: int = 0,
    ):
        super().__init__(batch_size, seed=random_state)
        if holdout not in ("split", "fresh"):
            raise ValueError(f"holdout={holdout!r}: must be 'split' or 'fresh'")
        if holdout == "fresh" and folds is not None:
            raise ValueError(f"folds={folds}: cross-validation needs holdout=split")
        if holdout == "split":
            check_split(n_samples, val_fraction, test_fraction, folds, classes=2)
        self.draw = dict(n_samples=n_samples, noise=noise, factor=factor)
        self.random_state, self.holdout = random_state, holdout
        self.fractions = (val_fraction, test_fraction)
        self.folds, self.fold = folds, fold

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train:
            return
        x, y = self._sample(self.random_state)
        if self.holdout == "fresh":
            self.train = _tensors(x, y)
            self.val = _tensors(*self._sample(self.random_state + 1))
            self.test = _tensors(*self._sample(self.random_state + 2))
            return
        parts = split_rows(len(x), *self.fractions, self.random_state, y, self.folds, self.fold)
        self.train, self.val, self.test = (_tensors(x[rows], y[rows]) for rows in parts)

    def _sample(self, random_state: int) -> tuple[np.ndarray, np.ndarray]:
        return make_circles(**self.draw, random_state=random_state)

    def inputs(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.tensor(frame[self.input_columns].to_numpy(float), dtype=torch.float32)

    def baselines(self) -> dict[str, float]:
        return fit_and_score(classifiers(), self.train, self.test, binary_scores)

    def figures(self) -> dict[str, Figure]:
        """The training points, class 0 red and class 1 blue, as in the lesson."""
        x, y = (t.cpu().numpy() for t in self.train)
        return {"train": data_scatter(x, y.ravel())}


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    # float32 columns, as the lesson's torch.Tensor(X) and y.reshape(500, 1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).reshape(-1, 1)
