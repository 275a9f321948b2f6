"""scikit-learn models fitted on the network's split, so every run says whether it beat
them; each data module picks its models and scoring. The Dummy models (the most frequent
class, the mean) score ignoring the inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.svm import SVC
from sklearn.utils import resample
from torch import Tensor

MAX_FIT_ROWS = 10_000  # an RBF SVM fits in O(rows^2): on more, a seeded sample of this many

Score = Callable[[Any, np.ndarray, np.ndarray], dict[str, float]]


def fit_and_score(
    models: dict[str, Any],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    score: Score,
    units: Callable[[np.ndarray], np.ndarray] = lambda y: y,
) -> dict[str, float]:
    """`baseline/<model>/<metric>` of `models` fitted on the training rows and scored on the
    test rows, images as rows of pixels; targets put in their own `units` first."""
    (x_train, y_train), (x_test, y_test) = (
        (x.cpu().flatten(1).numpy(), units(y.cpu().numpy().ravel())) for x, y in (train, test)
    )
    scores = {}
    for name, model in models.items():
        rows = (x_train, y_train)
        if isinstance(model, SVC) and len(x_train) > MAX_FIT_ROWS:
            rows = resample(*rows, replace=False, n_samples=MAX_FIT_ROWS, random_state=0)
        model.fit(*rows)
        for metric, value in score(model, x_test, y_test).items():
            scores[f"baseline/{name}/{metric}"] = float(value)
    return scores


def classifiers() -> dict[str, Any]:
    return {
        "svc": SVC(kernel="rbf"),
        "logreg": LogisticRegression(max_iter=1000),
        "majority": DummyClassifier(strategy="most_frequent"),
    }


def regressors() -> dict[str, Any]:
    return {
        "ridge": RidgeCV(alphas=np.logspace(-3, 3, 13)),
        "linear": LinearRegression(),
        "mean": DummyRegressor(strategy="mean"),
    }


def regression_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = model.predict(x)
    mse = metrics.mean_squared_error(y, pred)
    mae, r2 = metrics.mean_absolute_error(y, pred), metrics.r2_score(y, pred)
    return {"mse": mse, "rmse": np.sqrt(mse), "mae": mae, "r2": r2}


def multiclass_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = model.predict(x)
    f1 = metrics.f1_score(y, pred, average="macro", zero_division=0)
    return {"acc": metrics.accuracy_score(y, pred), "f1": f1}


def binary_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = model.predict(x)
    # a score per row to rank by: the SVM's margin, else P(class 1) (the Dummy has no margin)
    margin = hasattr(model, "decision_function")
    ranks = model.decision_function(x) if margin else model.predict_proba(x)[:, 1]
    f1 = metrics.f1_score(y, pred, zero_division=0)  # 0, as torchmetrics, when none predicted
    return {
        "acc": metrics.accuracy_score(y, pred),
        "auroc": metrics.roc_auc_score(y, ranks),
        "f1": f1,
    }
