"""Each picture holds the artists a reader needs, drawn from small known inputs."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.contour import QuadContourSet
from matplotlib.figure import Figure
from sklearn.metrics import r2_score

from litlab import figures

X = np.array([[0.0, 0.0], [1.0, 2.0], [-1.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
Y = np.array([0, 1, 1, 0, 1])


def scatters(figure: Figure) -> list[PathCollection]:
    # exact type: contour sets are collections too (matplotlib >= 3.8)
    return [c for c in figure.axes[0].collections if type(c) is PathCollection]


def contours(figure: Figure) -> list[QuadContourSet]:
    return [c for c in figure.axes[0].collections if isinstance(c, QuadContourSet)]


def near_the_unit_circle(points: np.ndarray) -> np.ndarray:
    """P(class 1) of a fake classifier: a logistic of the distance to the origin, 0.5 at 1."""
    return 1 / (1 + np.exp(4 * (np.hypot(points[:, 0], points[:, 1]) - 1)))


def assert_class_points(figure: Figure) -> None:
    red, blue = scatters(figure)
    assert [c.get_label() for c in (red, blue)] == ["class 0", "class 1"]
    assert (red.get_facecolor() == to_rgba("red")).all()
    assert (blue.get_facecolor() == to_rgba("blue")).all()
    assert red.get_offsets().tolist() == X[Y == 0].tolist()
    assert blue.get_offsets().tolist() == X[Y == 1].tolist()


def test_data_scatter_draws_class_0_red_and_class_1_blue():
    figure = figures.data_scatter(X, Y)
    assert_class_points(figure)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]
    assert ax.get_aspect() == 1.0


def test_decision_boundary_asks_once_for_the_whole_plane():
    calls = []

    def proba(points: np.ndarray) -> np.ndarray:
        calls.append(points)
        return near_the_unit_circle(points)

    figures.decision_boundary(proba, X, Y, resolution=20)
    (points,) = calls
    assert points.shape == (400, 2) and points.dtype == np.float32
    # the plane reaches 10% of the range beyond the points on every side
    assert points.min(axis=0) == pytest.approx([-1.3, -1.3])
    assert points.max(axis=0) == pytest.approx([2.3, 2.3])
    # the dashboard keeps probabilities over `plane` during training and draws them later
    np.testing.assert_array_equal(points, figures.plane(X, 20))


def test_decision_boundary_draws_probabilities_the_half_line_and_the_points_on_top():
    figure = figures.decision_boundary(near_the_unit_circle, X, Y, resolution=40)
    filled, half = contours(figure)
    assert filled.filled and filled.levels.tolist() == pytest.approx(np.linspace(0, 1, 11))
    low, high = filled.get_cmap()([0.0, 1.0])
    assert low[0] > low[2] and high[2] > high[0]  # red for class 0, blue for class 1
    assert not half.filled and half.levels.tolist() == [0.5]
    (boundary,) = half.get_paths()
    assert np.hypot(*boundary.vertices.T) == pytest.approx(1, abs=0.02)
    assert_class_points(figure)
    assert min(c.get_zorder() for c in scatters(figure)) > half.get_zorder() > filled.get_zorder()
    ax, colorbar = figure.axes
    assert ax.get_title() == "decision boundary" and colorbar.get_ylabel() == "P(class 1)"


def test_predicted_vs_actual_has_the_identity_line_and_r2():
    actual, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.5, 3.5, 5.0])
    figure = figures.predicted_vs_actual(actual, predicted)
    ax = figure.axes[0]
    (line,) = ax.get_lines()
    assert line.get_xydata().tolist() == [[1.0, 1.0], [5.0, 5.0]]
    assert line.get_label() == "y = x" and line.get_linestyle() == "--"
    assert f"R² = {r2_score(actual, predicted):.3f}" in ax.get_title()
    assert (
        scatters(figure)[0].get_offsets().tolist() == np.column_stack([actual, predicted]).tolist()
    )
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("actual", "predicted")


def test_predicted_vs_actual_of_constant_targets_has_no_r2():
    figure = figures.predicted_vs_actual(np.ones(3), np.array([1.0, 2.0, 0.0]))
    assert "R² = nan" in figure.axes[0].get_title()


def test_residuals_against_prediction_with_a_zero_line():
    actual, predicted = np.array([1.0, 2.0, 3.0]), np.array([1.5, 1.0, 3.0])
    figure = figures.residuals(actual, predicted)
    ax = figure.axes[0]
    (zero,) = ax.get_lines()
    assert list(zero.get_ydata()) == [0, 0]
    assert list(zero.get_xdata()) == [0, 1]  # the whole width, in axes coordinates
    assert scatters(figure)[0].get_offsets().tolist() == [[1.5, -0.5], [1.0, 1.0], [3.0, 0.0]]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "actual - predicted")


def test_learning_rate_line():
    figure = figures.learning_rate([0.1, 0.1, 0.05], "epoch")
    ax = figure.axes[0]
    (line,) = ax.get_lines()
    assert line.get_xydata().tolist() == [[0, 0.1], [1, 0.1], [2, 0.05]]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "learning rate")
    assert ax.get_title() == "learning-rate schedule"


def test_loss_curves_one_line_each_log_scale_when_positive():
    curves = {"train/loss": [(10, 0.5), (20, 0.25)], "val/loss": [(20, 0.4)]}
    ax = figures.loss_curves(curves).axes[0]
    train, val = ax.get_lines()
    assert [line.get_label() for line in (train, val)] == ["train/loss", "val/loss"]
    assert train.get_xydata().tolist() == [[10, 0.5], [20, 0.25]]
    assert val.get_xydata().tolist() == [[20, 0.4]] and val.get_marker() == "o"  # one point
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train/loss", "val/loss"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale()) == ("step", "loss", "log")
    assert figures.loss_curves({"train/loss": [(1, -0.5)]}).axes[0].get_yscale() == "linear"


def test_loss_curves_of_nothing_is_an_empty_linear_plot():
    ax = figures.loss_curves({}).axes[0]
    assert ax.get_lines() == [] and ax.get_yscale() == "linear" and ax.get_legend() is None


@pytest.mark.parametrize(
    "draw",
    [
        lambda: figures.data_scatter(X, Y),
        lambda: figures.decision_boundary(near_the_unit_circle, X, Y, resolution=10),
        lambda: figures.predicted_vs_actual(X[:, 0], X[:, 1]),
        lambda: figures.residuals(X[:, 0], X[:, 1]),
        lambda: figures.learning_rate([1.0], "step"),
        lambda: figures.loss_curves({"train/loss": [(0, 1.0)]}),
    ],
)
def test_figures_are_small(draw):
    figure = draw()
    assert figure.get_dpi() == 80 and tuple(figure.get_size_inches()) == (4.0, 3.5)


def test_a_large_set_is_drawn_as_a_sample_of_points():
    x = np.random.default_rng(1).normal(size=(50_000, 2))
    figure = figures.data_scatter(x, (x[:, 0] > 0).astype(int))
    drawn = np.concatenate([c.get_offsets() for c in figure.axes[0].collections])
    assert len(drawn) == figures.MAX_POINTS and len(np.unique(drawn, axis=0)) == len(drawn)
