"""Seeded train/val/test splits by fractions, or by k folds for cross-validation."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from litlab.errors import DataError
from litlab.signatures import AtLeast

# k of a k-fold cross-validation (null: one split by fractions)
Folds = Annotated[int, AtLeast(2)] | None
Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # row indices of train, val, test


def check_split(
    n: int, val_fraction: float, test_fraction: float, folds: int | None, classes: int = 1
) -> None:
    """Raise a ValueError naming the key when a split cannot be made from `n` rows.

    `classes` > 1 asks for a stratified split: every part needs a row of each class.
    """
    least = max(classes, 1)
    if folds is not None and not 2 <= folds <= n:
        raise ValueError(f"folds={folds}: must be between 2 and the number of rows ({n})")
    parts = [("val_fraction", val_fraction)]
    if folds is None:
        parts.append(("test_fraction", test_fraction))
    for name, fraction in parts:
        if not 0 < fraction < 1 or round(n * fraction) < least:
            raise ValueError(
                f"{name}={fraction}: must be in (0, 1) and hold at least {least} of the {n} rows"
            )
    test_name, test_part = (
        (f"1/folds={1 / folds:.3g}", 1 / folds)
        if folds
        else (f"test_fraction={test_fraction}", test_fraction)
    )
    if val_fraction + test_part >= 1 or n * (1 - val_fraction - test_part) < least:
        raise ValueError(
            f"val_fraction={val_fraction} + {test_name} leaves fewer than {least} of the "
            f"{n} rows for training: the sum must be < 1"
        )


def check_classes(
    counts: dict[str, int], target: str, folds: int | None, source: str, gaps: str = ""
) -> None:
    """Raise a DataError naming each class with too few rows for a stratified split, and
    what to do, in place of scikit-learn's "The least populated class in y has only 1
    member". Three rows a class, or one a fold: stratification can then keep at least
    one in training and let validation and test have their share. `gaps` names the
    missing values of the rows dropped before (`bmi 15`): a column recorded for one class
    only empties the others."""
    need = max(3, folds or 0)
    few = {name: n for name, n in counts.items() if n < need}
    if not few:
        return
    shown = " and ".join(f"class {c!r} has {n} row{'' if n == 1 else 's'}" for c, n in few.items())
    what = f"at least {need} rows of each class" + (f" with data.folds={folds}" if folds else "")
    it, its = ("it", "its") if len(few) == 1 else ("them", "their")
    smallest = min(counts.values())
    fewer = (
        f", ask for fewer folds (data.folds={smallest})" if smallest >= 3 else ", drop data.folds"
    )
    fewer = fewer if folds else ""
    if gaps:
        shown += f" once the rows with a missing value are dropped ({gaps})"
        fewer += ", keep those rows (data.missing=impute)"
    raise DataError(
        f"{source}: target {target!r}: {shown}; a stratified split needs {what}: merge {it} "
        f"into another class, leave {its} rows out{fewer}, or read {target} as numbers "
        "(data.task=regression)"
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
    """Row indices for train/val/test. With `labels` the split keeps class proportions.

    With `folds`, the test rows are fold `fold` of a seeded k-fold split (and
    `test_fraction` is unused); val is then `val_fraction` of all rows, from the rest.
    """
    rows, kfold = np.arange(n), KFold if labels is None else StratifiedKFold
    if folds is None:
        rest, test = train_test_split(
            rows, test_size=test_fraction, stratify=labels, random_state=seed
        )
    else:
        rest, test = list(kfold(folds, shuffle=True, random_state=seed).split(rows, labels))[fold]
    val_of_rest = val_fraction * n / len(rest)
    strata = None if labels is None else labels[rest]
    train, val = train_test_split(rest, test_size=val_of_rest, stratify=strata, random_state=seed)
    return train, val, test
