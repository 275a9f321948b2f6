"""The lesson's data: two noisy concentric circles, class 0 outside, class 1 inside."""

from __future__ import annotations

from typing import ClassVar, Literal

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
    """`make_circles` points as float32 x (N, 2) and labels y (N, 1). `holdout="split"`:
    a seeded stratified split by fractions (or `folds`); `"fresh"`: train on every point,
    as the lesson does, and validate and test on fresh draws (`random_state` + 1 and + 2)."""

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
        if self.holdout == "fresh":
            self.train, self.val, self.test = (self._draw(k) for k in range(3))
            return
        x, y = self._draw(0)
        labels = y[:, 0].numpy()
        parts = split_rows(
            len(x), *self.fractions, self.random_state, labels, self.folds, self.fold
        )
        self.train, self.val, self.test = ((x[rows], y[rows]) for rows in parts)

    def _draw(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw `k` as the lesson's float32 torch.Tensor(X) and y.reshape(500, 1)."""
        x, y = make_circles(**self.draw, random_state=self.random_state + k)
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None]

    def inputs(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.tensor(frame[self.input_columns].to_numpy(float), dtype=torch.float32)

    def baselines(self) -> dict[str, float]:
        return fit_and_score(classifiers(), self.train, self.test, binary_scores)

    def figures(self) -> dict[str, Figure]:
        x, y = (t.cpu().numpy() for t in self.train)
        return {"train": data_scatter(x, y.ravel())}
