"""Pictures for the dashboards: pure functions from arrays to matplotlib figures.

Figures are built with `Figure(...)` (no pyplot): the Agg renderer, no GUI and no global
state, so they are freed when dropped. Even small, one costs 50-100 ms to render here,
as much as 100 steps of the lesson's network: callers render them outside training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.utils import resample

SIZE, DPI = (4.0, 3.5), 80
MAX_POINTS = 2_000  # more only hide each other, and take seconds to draw
CLASS_COLORS = ("red", "blue")  # class 0, class 1, as in the lesson's scatter plot


def _figure() -> tuple[Figure, Axes]:
    # constrained layout: at 4 x 3.5 inches the default margins clip tick labels (".0100")
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _points(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    """The points coloured by label; a seeded sample of MAX_POINTS of them if more."""
    if len(x) > MAX_POINTS:
        x, y = resample(x, y, replace=False, n_samples=MAX_POINTS, random_state=0)
    for label, color in enumerate(CLASS_COLORS):
        mine = y == label
        ax.scatter(
            x[mine, 0],
            x[mine, 1],
            s=8,
            facecolors=color,
            edgecolors="white",  # separates the points from each other and from the contours
            linewidths=0.3,
            zorder=3,  # above contour lines, which matplotlib draws at zorder 2
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
    p = np.asarray(proba(points)).reshape(resolution, resolution)
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
    ss_res = np.sum((actual - predicted) ** 2)
    ss_tot = np.sum((actual - actual.mean()) ** 2)
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")  # undefined for constant targets
    low, high = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
    figure, ax = _figure()
    ax.scatter(actual, predicted, s=8)
    ax.plot([low, high], [low, high], "k--", linewidth=1, label="y = x")
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
    """The learning rate at each scheduler interval, on an axis from 0: a constant rate is
    a flat line at its value (autoscaling would stretch 0.01 over 0.0096-0.0104)."""
    figure, ax = _figure()
    ax.plot(range(len(rates)), rates)
    top = max(rates, default=0.0)
    ax.set_ylim(0, 1.15 * top if top > 0 else 1)
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set(xlabel=interval, ylabel="learning rate", title="learning-rate schedule")
    return figure


OVERFIT = 0.10  # val/loss this far above its best at the end: the steps after it overfit


def loss_curves(curves: dict[str, list[tuple[int, float]]]) -> Figure:
    """One line per named curve of (step, loss); a log scale when every loss is positive.
    The best val/loss is marked; when the last is more than OVERFIT above it, the steps
    after the best are shaded and the title says they overfit."""
    figure, ax = _figure()
    for name, points in curves.items():
        steps, values = zip(*points, strict=True) if points else ((), ())
        # a line through a single point draws nothing (e.g. one validation): mark it
        ax.plot(steps, values, marker="o" if len(points) == 1 else "", label=name)
    losses = [v for points in curves.values() for _, v in points]
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="loss")
    val = curves.get("val/loss", [])
    if len(val) > 1:
        step, best = min(val, key=lambda point: point[1])
        ax.plot([step], [best], "k*", markersize=9, label=f"best val/loss (step {step})")
        rise = (val[-1][1] - best) / abs(best) if best else 0.0
        if rise > OVERFIT:
            shade = dict(color="grey", alpha=0.15, linewidth=0, label="after the best: overfit")
            ax.axvspan(step, val[-1][0], **shade)
            ax.set_title(f"loss: val/loss ends {rise:.0%} above its best")
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


def image_grid(
    images: np.ndarray, predicted: np.ndarray, actual: np.ndarray, columns: int = 8
) -> Figure:
    """Images (N, H, W), each titled with its true label, and in red with the predicted
    one in brackets where the network was wrong; the title above says so."""
    rows = -(-len(images) // columns)
    figure = Figure(figsize=(columns * 0.8, rows * 0.95 + 0.4), dpi=DPI, layout="constrained")
    for i, ax in enumerate(figure.subplots(rows, columns, squeeze=False).ravel()):
        if i >= len(images):
            ax.remove()  # no empty frame where the last row is short
            continue
        ax.set_axis_off()
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
        wrong = predicted[i] != actual[i]
        label = f"{actual[i]} ({predicted[i]})" if wrong else f"{actual[i]}"
        ax.set_title(label, fontsize=9, color="red" if wrong else "black")
    figure.suptitle("test images: true label, (predicted) in red where wrong", fontsize=10)
    return figure


def confusion(matrix: np.ndarray, names: list[str] | None = None) -> Figure:
    """Counts of test rows by true class (rows) and predicted class (columns), every
    cell numbered (zeros too, in grey), the axes named by the classes."""
    names = names or [str(i) for i in range(len(matrix))]
    figure, ax = _figure()
    ax.imshow(matrix, cmap="Blues", vmin=0)
    dark = matrix.max() / 2  # above it the cell is dark blue: black text would not show
    size = 11 if len(matrix) <= 4 else 9 if len(matrix) <= 8 else 7
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > dark else "black" if count else "grey"
        ax.text(j, i, str(count), ha="center", va="center", fontsize=size, color=color)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test rows)")
    turn = 45 if max(map(len, names)) > 3 else 0
    ax.set_xticks(range(len(matrix)), names, rotation=turn, ha="right" if turn else "center")
    ax.set_yticks(range(len(matrix)), names)
    return figure


def filters(weights: np.ndarray) -> Figure:
    """First-layer convolution kernels (C, 1, k, k), one small image each, on one colour
    scale centred on 0 (white), so their signs and sizes compare."""
    columns = min(len(weights), 8)
    rows = -(-len(weights) // columns)
    figure = Figure(figsize=(columns * 0.6, rows * 0.6 + 0.45), dpi=DPI, layout="constrained")
    reach = float(np.abs(weights).max()) or 1.0
    for i, ax in enumerate(figure.subplots(rows, columns, squeeze=False).ravel()):
        if i >= len(weights):
            ax.remove()
            continue
        ax.set_axis_off()
        ax.imshow(weights[i, 0], cmap="RdBu", vmin=-reach, vmax=reach)
    k = weights.shape[-1]
    figure.suptitle(f"first-layer filters ({k}x{k}): blue +, red -", fontsize=9)
    return figure
