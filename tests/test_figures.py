"""Each picture holds the artists a reader needs, drawn from small known inputs."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from sklearn.metrics import r2_score

from litlab import figures

X = np.array([[0.0, 0.0], [1.0, 2.0], [-1.0, 1.0], [2.0, -1.0]])
Y = np.array([0, 1, 1, 0])


def scatters(figure) -> list[PathCollection]:
    return [c for c in figure.axes[0].collections if type(c) is PathCollection]


def test_data_scatter_draws_class_0_red_and_class_1_blue():
    (red, blue) = scatters(figures.data_scatter(X, Y))
    assert tuple(red.get_facecolor()[0]) == to_rgba("red") and tuple(
        blue.get_facecolor()[0]
    ) == to_rgba("blue")
    assert red.get_offsets().tolist() == X[Y == 0].tolist()
    assert blue.get_offsets().tolist() == X[Y == 1].tolist()


def test_decision_boundary_asks_once_for_the_whole_plane():
    calls = []

    def proba(points: np.ndarray) -> np.ndarray:
        calls.append(points)
        return 1 / (1 + np.exp(np.hypot(points[:, 0], points[:, 1]) - 1))

    figure = figures.decision_boundary(proba, X, Y, resolution=20)
    (points,) = calls
    assert points.shape == (400, 2) and points.dtype == np.float32
    # the plane reaches 10% of the range beyond the points on every side
    assert points.min(axis=0) == pytest.approx([-1.3, -1.3]) and points.max(
        axis=0
    ) == pytest.approx([2.3, 2.3])
    ax = figure.axes[0]
    assert len(scatters(figure)) == 2  # the points drawn on top of the probabilities
    assert ax.get_title() == "decision boundary" and len(figure.axes) == 2  # with a colorbar


def test_predicted_vs_actual_has_the_identity_line_and_r2():
    actual, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.5, 3.5, 5.0])
    figure = figures.predicted_vs_actual(actual, predicted)
    (line,) = figure.axes[0].get_lines()
    assert line.get_xydata().tolist() == [[1.0, 1.0], [5.0, 5.0]]
    assert f"R² = {r2_score(actual, predicted):.3f}" in figure.axes[0].get_title()
    assert (
        scatters(figure)[0].get_offsets().tolist() == np.column_stack([actual, predicted]).tolist()
    )


def test_residuals_against_prediction_with_a_zero_line():
    actual, predicted = np.array([1.0, 2.0, 3.0]), np.array([1.5, 1.0, 3.0])
    figure = figures.residuals(actual, predicted)
    (zero,) = figure.axes[0].get_lines()
    assert set(zero.get_ydata()) == {0}
    assert scatters(figure)[0].get_offsets().tolist() == [[1.5, -0.5], [1.0, 1.0], [3.0, 0.0]]


def test_learning_rate_line():
    figure = figures.learning_rate([0.1, 0.1, 0.05], "epoch")
    (line,) = figure.axes[0].get_lines()
    assert line.get_ydata().tolist() == [0.1, 0.1, 0.05] and figure.axes[0].get_xlabel() == "epoch"


def test_loss_curves_one_line_each_log_scale_when_positive():
    curves = {"train/loss": [(10, 0.5), (20, 0.25)], "val/loss": [(20, 0.4)]}
    figure = figures.loss_curves(curves)
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["train/loss", "val/loss"]
    assert lines[0].get_xydata().tolist() == [[10, 0.5], [20, 0.25]]
    assert figure.axes[0].get_yscale() == "log"
    assert figures.loss_curves({"train/loss": [(1, -0.5)]}).axes[0].get_yscale() == "linear"


def test_figures_are_small():
    figure = figures.learning_rate([1.0], "step")
    assert figure.get_dpi() == 80 and tuple(figure.get_size_inches()) == (4.0, 3.5)
