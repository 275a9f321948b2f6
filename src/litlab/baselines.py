"""scikit-learn models fitted on the same split as the network, so every run says
whether the network beat them. Each data module picks its models and scoring. Every run
has a trivial one (scikit-learn's Dummy models: the most frequent class, the mean), the
score of ignoring the inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.svm import SVC
from sklearn.utils import resample
from torch import Tensor

# An RBF SVM fits in O(rows^2): 10,000 rows take a few seconds, 500,000 would take hours.
# On larger sets it fits a seeded sample of this many training rows (the others fit all).
MAX_FIT_ROWS = 10_000

Score = Callable[[Any, np.ndarray, np.ndarray], dict[str, float]]


def fit_and_score(
    models: dict[str, Any],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    score: Score,
    units: Callable[[np.ndarray], np.ndarray] = lambda y: y,
) -> dict[str, float]:
    """Test metrics of `models` as `baseline/<model>/<metric>`, fitted on the training
    rows (an SVM on at most MAX_FIT_ROWS of them) and scored on every test row; targets
    are put in their own `units` first."""
    (x_train, y_train), (x_test, y_test) = (  # images as rows of pixels
        (x.cpu().flatten(1).numpy(), units(y.cpu().numpy().ravel())) for x, y in (train, test)
    )
    metrics = {}
    for name, model in models.items():
        model.fit(*_sample(x_train, y_train) if isinstance(model, SVC) else (x_train, y_train))
        for metric, value in score(model, x_test, y_test).items():
            metrics[f"baseline/{name}/{metric}"] = float(value)
    return metrics


def classifiers() -> dict[str, Any]:
    """An RBF SVM, logistic regression, and always the most frequent training class."""
    return {
        "svc": SVC(kernel="rbf"),
        "logreg": LogisticRegression(max_iter=1000),
        "majority": DummyClassifier(strategy="most_frequent"),
    }


def regressors() -> dict[str, Any]:
    """Ridge regression with its penalty chosen by cross-validation, least squares, and
    always the training mean."""
    return {
        "ridge": RidgeCV(alphas=np.logspace(-3, 3, 13)),
        "linear": LinearRegression(),
        "mean": DummyRegressor(strategy="mean"),
    }


def _sample(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= MAX_FIT_ROWS:
        return x, y
    return resample(x, y, replace=False, n_samples=MAX_FIT_ROWS, random_state=0)


def regression_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = model.predict(x)
    mse = mean_squared_error(y, pred)
    return {
        "mse": mse,
        "rmse": np.sqrt(mse),
        "mae": mean_absolute_error(y, pred),
        "r2": r2_score(y, pred),
    }


def multiclass_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = model.predict(x)
    return {
        "acc": accuracy_score(y, pred),
        "f1": f1_score(y, pred, average="macro", zero_division=0),
    }


def binary_scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = model.predict(x)
    # a score per row to rank by: the SVM's margin, else P(class 1) (the Dummy has no margin)
    ranks = model.decision_function(x) if hasattr(model, "decision_function") else None
    ranks = model.predict_proba(x)[:, 1] if ranks is None else ranks
    return {
        "acc": accuracy_score(y, pred),
        "auroc": roc_auc_score(y, ranks),
        "f1": f1_score(y, pred, zero_division=0),  # 0, as torchmetrics, when none is predicted
    }
