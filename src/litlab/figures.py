"""Pictures for the dashboards: pure functions from arrays to matplotlib figures.

Figures are built with `Figure(...)` (no pyplot): the Agg renderer, no GUI and no global
state, so they are freed when dropped. Even small, one costs 50-100 ms to render here,
as much as 100 steps of the lesson's network: callers render them outside training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

SIZE, DPI = (4.0, 3.5), 80
CLASS_COLORS = ("red", "blue")  # class 0, class 1, as in the lesson's scatter plot


def _figure() -> tuple[Figure, object]:
    figure = Figure(figsize=SIZE, dpi=DPI)
    return figure, figure.add_subplot()


def _points(ax: object, x: np.ndarray, y: np.ndarray) -> None:
    for label, color in enumerate(CLASS_COLORS):
        mine = y == label
        ax.scatter(
            x[mine, 0],
            x[mine, 1],
            s=8,
            color=color,
            edgecolors="white",
            linewidths=0.3,
            label=f"class {label}",
        )


def data_scatter(x: np.ndarray, y: np.ndarray) -> Figure:
    """The (N, 2) points `x` coloured by their 0/1 label `y`."""
    figure, ax = _figure()
    _points(ax, x, y)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title("data")
    return figure


def plane(x: np.ndarray, resolution: int = 60) -> np.ndarray:
    """A (resolution**2, 2) float32 grid over the points `x` and 10% around them."""
    low, high = x.min(axis=0), x.max(axis=0)
    margin = 0.1 * (high - low)
    axes = [np.linspace(low[i] - margin[i], high[i] + margin[i], resolution) for i in (0, 1)]
    grid_x, grid_y = np.meshgrid(*axes)
    return np.column_stack([grid_x.ravel(), grid_y.ravel()]).astype(np.float32)


def decision_boundary(
    proba: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, resolution: int = 60
) -> Figure:
    """P(class 1) over `plane(x)` (one call of `proba`), the 0.5 line, and the points."""
    points = plane(x, resolution)
    grid_x, grid_y = (points[:, i].reshape(resolution, resolution) for i in (0, 1))
    p = proba(points).reshape(resolution, resolution)
    figure, ax = _figure()
    filled = ax.contourf(grid_x, grid_y, p, levels=np.linspace(0, 1, 11), cmap="RdBu", alpha=0.8)
    ax.contour(grid_x, grid_y, p, levels=[0.5], colors="black", linewidths=1)
    _points(ax, x, y)
    figure.colorbar(filled, ax=ax, label="P(class 1)")
    ax.set_aspect("equal")
    ax.set_title("decision boundary")
    return figure


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Each test row at (actual, predicted), with the line of perfect predictions."""
    r2 = 1 - np.sum((actual - predicted) ** 2) / np.sum((actual - actual.mean()) ** 2)
    both = np.concatenate([actual, predicted])
    figure, ax = _figure()
    ax.scatter(actual, predicted, s=8)
    ax.plot([both.min(), both.max()], [both.min(), both.max()], "k--", linewidth=1, label="y = x")
    ax.set(xlabel="actual", ylabel="predicted", title=f"predicted vs actual (R² = {r2:.3f})")
    ax.legend(loc="upper left", fontsize="small")
    return figure


def residuals(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Residuals (actual - predicted) against the prediction: structure means bias."""
    figure, ax = _figure()
    ax.scatter(predicted, actual - predicted, s=8)
    ax.axhline(0, color="black", linewidth=1)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title="residuals")
    return figure


def learning_rate(rates: list[float], interval: str) -> Figure:
    """The learning rate at each scheduler interval."""
    figure, ax = _figure()
    ax.plot(range(len(rates)), rates)
    ax.set(xlabel=interval, ylabel="learning rate", title="learning-rate schedule")
    return figure


def loss_curves(curves: dict[str, list[tuple[int, float]]]) -> Figure:
    """One line per named curve of (step, loss); a log scale when every loss is positive."""
    figure, ax = _figure()
    for name, points in curves.items():
        steps, values = zip(*points, strict=True) if points else ((), ())
        ax.plot(steps, values, label=name)
    if all(v > 0 for points in curves.values() for _, v in points) and any(curves.values()):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="loss")
    if curves:
        ax.legend(fontsize="small")
    return figure


def comparison(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> Figure:
    """One panel per comparison: per setting the mean training loss over seeds (steps,
    mean, std) as a line, with a band of one standard deviation."""
    figure = Figure(figsize=(4.5 * len(panels), 3.5), dpi=DPI, layout="constrained")  # drawn once
    for ax, (title, curves) in zip(
        figure.subplots(1, len(panels), squeeze=False)[0], panels.items(), strict=True
    ):
        for name, (steps, mean, std) in curves.items():
            (line,) = ax.plot(steps, mean, label=name)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set(xlabel="step", ylabel="train/loss", title=title, yscale="log")
        ax.legend(fontsize="small")
    return figure
