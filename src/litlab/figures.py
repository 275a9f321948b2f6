"""Pictures for the dashboards: pure functions from arrays to `Figure`s (no pyplot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.utils import resample

SIZE, DPI = (4.0, 3.5), 80
MAX_POINTS = 2_000  # more only hide each other, and take seconds to draw
CLASS_COLORS = ("red", "blue")  # class 0, class 1, as in the lesson's scatter plot


def _figure(**labels: Any) -> tuple[Figure, Axes]:
    """A small figure with one plot, its `labels` set (title, xlabel, ...)."""
    # constrained layout: at 4 x 3.5 inches the default margins clip tick labels (".0100")
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    return figure, figure.add_subplot(**labels)


def _points(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    """The points coloured by label; a seeded sample of MAX_POINTS of them if more."""
    if len(x) > MAX_POINTS:
        x, y = resample(x, y, replace=False, n_samples=MAX_POINTS, random_state=0)
    style = {"s": 8, "edgecolors": "white", "linewidths": 0.3, "zorder": 3}  # above contours
    for label, color in enumerate(CLASS_COLORS):
        ax.scatter(*x[y == label].T, facecolors=color, label=f"class {label}", **style)


def data_scatter(x: np.ndarray, y: np.ndarray) -> Figure:
    """The (N, 2) points `x` coloured by their 0/1 label `y`."""
    figure, ax = _figure(aspect="equal", title="data")
    _points(ax, x, y)
    ax.legend(loc="upper right", fontsize="small")
    return figure


def plane(x: np.ndarray, resolution: int = 60) -> np.ndarray:
    """A (resolution**2, 2) float32 grid over the points `x` and 10% around them."""
    low, high = x.min(axis=0), x.max(axis=0)
    low, high = low - 0.1 * (high - low), high + 0.1 * (high - low)
    grid = np.meshgrid(*(np.linspace(low[i], high[i], resolution) for i in (0, 1)))
    return np.column_stack([g.ravel() for g in grid]).astype(np.float32)


def decision_boundary(
    proba: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, resolution: int = 60
) -> Figure:
    """P(class 1) over `plane(x)` (one call of `proba`), the 0.5 line, and the points."""
    points = plane(x, resolution)
    grid_x, grid_y, p = (
        a.reshape(resolution, resolution) for a in (*points.T, np.asarray(proba(points)))
    )
    figure, ax = _figure(aspect="equal", title="decision boundary")
    filled = ax.contourf(grid_x, grid_y, p, levels=np.linspace(0, 1, 11), cmap="RdBu", alpha=0.8)
    ax.contour(grid_x, grid_y, p, levels=[0.5], colors="black", linewidths=1)
    _points(ax, x, y)
    figure.colorbar(filled, ax=ax, label="P(class 1)")
    return figure


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Each test row at (actual, predicted), with the line of perfect predictions."""
    ss_tot = np.sum((actual - actual.mean()) ** 2)  # 0: constant targets, R² undefined
    r2 = 1 - np.sum((actual - predicted) ** 2) / ss_tot if ss_tot > 0 else float("nan")
    low, high = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
    title = f"predicted vs actual (R² = {r2:.3f})"
    figure, ax = _figure(xlabel="actual", ylabel="predicted", title=title)
    ax.scatter(actual, predicted, s=8)
    ax.plot([low, high], [low, high], "k--", linewidth=1, label="y = x")
    ax.legend(loc="upper left", fontsize="small")
    return figure


def residuals(actual: np.ndarray, predicted: np.ndarray) -> Figure:
    """Residuals (actual - predicted) against the prediction: structure means bias."""
    figure, ax = _figure(xlabel="predicted", ylabel="actual - predicted", title="residuals")
    ax.scatter(predicted, actual - predicted, s=8)
    ax.axhline(0, color="black", linewidth=1)
    return figure


def learning_rate(rates: list[float], interval: str) -> Figure:
    """The learning rate at each scheduler interval, on an axis from 0: a constant rate is
    a flat line at its value (autoscaling would stretch 0.01 over 0.0096-0.0104)."""
    labels = {"xlabel": interval, "ylabel": "learning rate", "title": "learning-rate schedule"}
    figure, ax = _figure(**labels, ylim=(0, 1.15 * max(rates, default=0.0) or 1))
    ax.plot(range(len(rates)), rates)
    ax.ticklabel_format(axis="y", useOffset=False)
    return figure


OVERFIT = 0.10  # val/loss this far above its best at the end: the steps after it overfit


def loss_curves(curves: dict[str, list[tuple[int, float]]]) -> Figure:
    """One line per curve of (step, loss), on a log scale when every loss is positive; the
    best val/loss starred, and the steps after it shaded when the last is OVERFIT above it."""
    figure, ax = _figure(xlabel="step", ylabel="loss", title="loss")
    for name, points in curves.items():  # a single point is marked: a line would not show
        ax.plot(*zip(*points, strict=True), marker="o" if len(points) == 1 else "", label=name)
    losses = [v for points in curves.values() for _, v in points]
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    val = curves.get("val/loss", [])
    if len(val) > 1:
        step, best = min(val, key=lambda point: point[1])
        ax.plot([step], [best], "k*", markersize=9, label=f"best val/loss (step {step})")
        rise = (val[-1][1] - best) / abs(best) if best else 0.0
        if rise > OVERFIT:
            ax.axvspan(step, val[-1][0], color="grey", alpha=0.15, label="after the best: overfit")
            ax.set_title(f"loss: val/loss ends {rise:.0%} above its best")
    if curves:
        ax.legend(fontsize="small")
    return figure


def comparison(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> Figure:
    """Per panel and setting, the mean loss over seeds (steps, mean, std) in a band of 1 std."""
    figure = Figure(figsize=(4.5 * len(panels), 3.5), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, curves) in zip(axes, panels.items(), strict=True):
        for name, (steps, mean, std) in curves.items():
            (line,) = ax.plot(steps, mean, label=name)
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set(xlabel="step", ylabel="train/loss", title=title, yscale="log")
        ax.legend(fontsize="small")
    return figure


def _grid(images: np.ndarray, columns: int, cell: float, title: str, **shown: Any) -> Figure:
    """The (N, H, W) `images` in rows of `columns`, without frames (`shown`: imshow's)."""
    rows = -(-len(images) // columns)
    size = (columns * cell, rows * (cell + 0.15) + 0.45)
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    for i, ax in enumerate(figure.subplots(rows, columns, squeeze=False).ravel()):
        if i < len(images):
            ax.set_axis_off()
            ax.imshow(images[i], **shown)
        else:
            ax.remove()  # no empty frame where the last row is short
    figure.suptitle(title, fontsize=9)
    return figure


def image_grid(
    images: np.ndarray, predicted: np.ndarray, actual: np.ndarray, columns: int = 8
) -> Figure:
    """Images (N, H, W) titled by true label, and in red with the prediction where wrong."""
    title = "test images: true label, (predicted) in red where wrong"
    figure = _grid(images, columns, 0.8, title, cmap="gray_r", vmin=0, vmax=1)
    for ax, p, a in zip(figure.axes, predicted, actual, strict=True):
        right = p == a
        ax.set_title(
            f"{a}" if right else f"{a} ({p})", fontsize=9, color="black" if right else "red"
        )
    return figure


def confusion(matrix: np.ndarray, names: list[str] | None = None) -> Figure:
    """Test rows by true (rows) and predicted class (columns), every count shown."""
    names = names or [str(i) for i in range(len(matrix))]
    title = "confusion matrix (test rows)"
    figure, ax = _figure(xlabel="predicted", ylabel="true", title=title)
    ax.imshow(matrix, cmap="Blues", vmin=0)
    size = 11 if len(matrix) <= 4 else 9 if len(matrix) <= 8 else 7
    for (i, j), count in np.ndenumerate(matrix):  # on a dark cell black would not show
        color = "white" if count > matrix.max() / 2 else "black" if count else "grey"
        ax.text(j, i, str(count), ha="center", va="center", fontsize=size, color=color)
    turn = 45 if max(map(len, names)) > 3 else 0
    ax.set_xticks(range(len(matrix)), names, rotation=turn, ha="right" if turn else "center")
    ax.set_yticks(range(len(matrix)), names)
    return figure


def filters(weights: np.ndarray) -> Figure:
    """First-layer kernels (C, 1, k, k) on one colour scale centred on 0, to compare."""
    reach, k = float(np.abs(weights).max()) or 1.0, weights.shape[-1]
    title = f"first-layer filters ({k}x{k}): blue +, red -"
    shown = {"cmap": "RdBu", "vmin": -reach, "vmax": reach}
    return _grid(weights[:, 0], min(len(weights), 8), 0.6, title, **shown)
