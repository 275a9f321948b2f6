"""The lesson's data: two noisy concentric circles, class 0 outside, class 1 inside."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from sklearn.datasets import make_circles
from sklearn.model_selection import train_test_split
from typing_extensions import override

from litlab.data.base import TensorDataModule

Arrays = tuple[np.ndarray, np.ndarray]


class CirclesDataModule(TensorDataModule):
    """`make_circles` points as float32 `x` (N, 2) and labels `y` (N, 1).

    `holdout="split"`: a stratified train/val/test split by fractions, seeded by
    `random_state`. `holdout="fresh"`: train on all `n_samples` points, as the lesson
    does, and validate and test on fresh draws of the same size from the same
    distribution (`random_state + 1` and `+ 2`).
    """

    num_features = 2
    num_classes = 2

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
    ):
        super().__init__(batch_size, seed=random_state)
        _check_split(n_samples, holdout, val_fraction, test_fraction)
        self.draw = dict(n_samples=n_samples, noise=noise, factor=factor)
        self.random_state, self.holdout = random_state, holdout
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train:
            return
        data = self._sample(self.random_state)
        if self.holdout == "fresh":
            train, val, test = (
                data,
                self._sample(self.random_state + 1),
                self._sample(self.random_state + 2),
            )
        else:
            train, val, test = stratified_split(
                data, self.val_fraction, self.test_fraction, self.random_state
            )
        self.train, self.val, self.test = (_tensors(part) for part in (train, val, test))

    def _sample(self, random_state: int) -> Arrays:
        return make_circles(**self.draw, random_state=random_state)


def stratified_split(
    data: Arrays, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Arrays, Arrays, Arrays]:
    """Train/val/test split keeping class proportions; fractions are of the whole set."""
    x, y = data
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    val_of_rest = val_fraction / (1 - test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_of_rest, stratify=y_rest, random_state=seed
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def _tensors(data: Arrays) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data
    # float32 columns, as the lesson's torch.Tensor(X) and y.reshape(500, 1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).reshape(-1, 1)


def _check_split(n_samples: int, holdout: str, val_fraction: float, test_fraction: float) -> None:
    if n_samples < 2:
        raise ValueError(f"n_samples={n_samples}: must be >= 2 (one point per class at least)")
    if holdout not in ("split", "fresh"):
        raise ValueError(f"holdout={holdout!r}: must be 'split' or 'fresh'")
    if holdout == "fresh":
        return
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        # a stratified split needs at least one point of each of the two classes
        if not 0 < fraction < 1 or round(n_samples * fraction) < 2:
            raise ValueError(
                f"{name}={fraction}: must be in (0, 1) and hold at least 2 of the "
                f"{n_samples} points (use holdout=fresh to train on all of them)"
            )
    if val_fraction + test_fraction >= 1 or n_samples * (1 - val_fraction - test_fraction) < 2:
        raise ValueError(
            f"val_fraction={val_fraction} + test_fraction={test_fraction} leaves fewer than "
            f"2 of the {n_samples} points for training: the sum must be < 1"
        )
