"""Possible leaks: a feature that alone predicts the target almost perfectly on the training
rows. It is most often known only after the outcome (a recurrence date, the days to
recurrence) or the target under another name: the run names it and trains on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

LEAK_SCORE = 0.98  # balanced accuracy (classes) or R2 (numbers) of one column alone
# leaves of 5 rows or more cannot learn a column by heart; 8 steps cannot draw a number
DEPTH = {"classes": 3, "regression": 6}
MIN_LEAF = 5
MAX_ROWS = 10_000  # a seeded sample of the training rows on larger tables: a second at most


def possible_leaks(features: pd.DataFrame, y: pd.Series, classes: bool) -> dict[str, float]:
    """The columns a small tree fits alone to LEAK_SCORE or more, with their score; a
    missing value stays missing (its absence can be the leak)."""
    if len(y) > MAX_ROWS:
        keep = np.random.default_rng(0).choice(len(y), MAX_ROWS, replace=False)
        features, y = features.iloc[keep], y.iloc[keep]
    target = y.to_numpy(dtype=float)
    if len(np.unique(target)) < 2:
        return {}
    tree, metric = (
        (DecisionTreeClassifier(max_depth=DEPTH["classes"]), balanced_accuracy_score)
        if classes
        else (DecisionTreeRegressor(max_depth=DEPTH["regression"]), r2_score)
    )
    tree.set_params(min_samples_leaf=MIN_LEAF, random_state=0)
    found = {}
    for column in features.columns:
        values = features[column]
        if not pd.api.types.is_numeric_dtype(values):
            codes = pd.factorize(values.astype("string"), sort=True)[0]
            values = np.where(codes < 0, np.nan, codes)
        x = np.asarray(values, dtype=float).reshape(-1, 1)
        if (score := metric(target, tree.fit(x, target).predict(x))) >= LEAK_SCORE:
            found[str(column)] = float(score)
    return found


def name_leaks(
    features: pd.DataFrame, y: pd.Series, classes: bool, target: str, report: list[dict[str, str]]
) -> list[str]:
    """A line for each possible leak, and a note in its row of the column `report`."""
    found = possible_leaks(features, y, classes)
    for row in report:
        if row["column"] in found:
            note = f"possible leak: alone it scores {found[row['column']]:.3f}"
            row["why"] = "; ".join(filter(None, [row["why"], note]))
    metric = "balanced accuracy" if classes else "R2"
    return [
        f"possible leak: {column} alone predicts {target} on the training rows ({metric} "
        f"{score:.3f}, a small tree): is it known only after the outcome, or {target} under "
        f"another name? Training goes on; data.drop=[{column}] leaves it out"
        for column, score in found.items()
    ]
