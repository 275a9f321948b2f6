"""Seeded train/val/test splits by fractions, or by k folds for cross-validation."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from litlab.errors import DataError
from litlab.signatures import AtLeast

Folds = Annotated[int, AtLeast(2)] | None  # k of a k-fold cross-validation; null: fractions
Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # row indices of train, val, test


def check_split(
    n: int, val_fraction: float, test_fraction: float, folds: int | None, classes: int = 1
) -> None:
    """Raise a ValueError naming the key when `n` rows cannot be split, `classes` a part."""
    if folds is not None and not 2 <= folds <= n:
        raise ValueError(f"folds={folds}: must be between 2 and the number of rows ({n})")
    fractions = {"val_fraction": val_fraction} | ({} if folds else {"test_fraction": test_fraction})
    for name, fraction in fractions.items():
        if not 0 < fraction < 1 or round(n * fraction) < classes:
            raise ValueError(
                f"{name}={fraction}: must be in (0, 1) and hold at least {classes} of the {n} rows"
            )
    test = f"1/folds={1 / folds:.3g}" if folds else f"test_fraction={test_fraction}"
    rest = 1 - val_fraction - (1 / folds if folds else test_fraction)
    if rest <= 0 or n * rest < classes:
        raise ValueError(
            f"val_fraction={val_fraction} + {test} leaves fewer than {classes} of the {n} rows "
            "for training: the sum must be < 1"
        )


def check_classes(
    counts: dict[str, int], target: str, folds: int | None, source: str, gaps: str = ""
) -> None:
    """Raise a DataError naming each class too small to split (3 rows, or one a fold) and
    what to do; `gaps` names the missing values that emptied it (`bmi 15`)."""
    need = max(3, folds or 0)
    few = {name: n for name, n in counts.items() if n < need}
    if not few:
        return
    shown = " and ".join(f"class {c!r} has {n} row{'' if n == 1 else 's'}" for c, n in few.items())
    it, its = ("it", "its") if len(few) == 1 else ("them", "their")
    todo = f"merge {it} into another class, leave {its} rows out"
    if folds:
        least = min(counts.values())
        todo += f", ask for fewer folds (data.folds={least})" if least >= 3 else ", drop data.folds"
    if gaps:
        shown += f" once the rows with a missing value are dropped ({gaps})"
        todo += ", keep those rows (data.missing=impute)"
    raise DataError(
        f"{source}: target {target!r}: {shown}; a stratified split needs at least {need} rows of "
        f"each class{f' with data.folds={folds}' if folds else ''}: {todo}, or read {target} as "
        "numbers (data.task=regression)"
    )


def split_rows(
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    labels: np.ndarray | None = None,
    folds: int | None = None,
    fold: int = 0,
) -> Split:
    """Row indices of train, val, test, stratified by `labels`; test is fold `fold` with folds."""
    rows = np.arange(n)
    if folds is None:
        rest, test = train_test_split(
            rows, test_size=test_fraction, stratify=labels, random_state=seed
        )
    else:
        kfold = (KFold if labels is None else StratifiedKFold)(
            folds, shuffle=True, random_state=seed
        )
        rest, test = list(kfold.split(rows, labels))[fold]
    strata = None if labels is None else labels[rest]
    train, val = train_test_split(
        rest, test_size=val_fraction * n / len(rest), stratify=strata, random_state=seed
    )
    return train, val, test
