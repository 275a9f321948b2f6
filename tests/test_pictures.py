"""The loss figure draws every training step, small figures keep their
tick labels, confusion counts are readable, and baselines are not single-point scalars."""

from __future__ import annotations

import numpy as np
from conftest import scalars
from matplotlib.backends.backend_agg import FigureCanvasAgg

from litlab import figures
from litlab import train as recipe
from litlab.builders import build_data
from litlab.dashboard import Dashboard, start_figures
from litlab.train import prepare, train


def test_a_short_run_validates_and_draws_every_training_step(make_config):
    words = ["trainer.max_epochs=30", "trainer.log_every_n_steps=10", "data.batch_size=null"]
    job = prepare(make_config(*words))
    job.trainer.fit(job.module, datamodule=job.datamodule)
    recipe.test(job)
    job.trainer.logger.finalize("success")
    assert (job.dir / "checkpoints" / "best.ckpt").is_file()  # below 50 epochs, validated
    assert (job.dir / "plots" / "loss.png").stat().st_size > 0
    logged = scalars(job.dir)
    assert "val/loss" in logged
    # the curve the figure draws: every one of the 30 full-batch steps; where Lightning
    # logged train/loss (its step index is one less: 9, 19, 29), the same values
    (dashboard,) = [c for c in job.trainer.callbacks if isinstance(c, Dashboard)]
    curve = dict(dashboard.training_curve())
    assert sorted(curve) == list(range(1, 31))
    assert len(logged["train/loss"]) == 3
    for step, value in logged["train/loss"]:
        assert curve[step + 1] == np.float32(value)


def test_baselines_are_hparams_columns_not_scalars(make_config):
    run_dir, metrics = train(make_config("trainer.max_epochs=5", "logger=tensorboard"))
    assert "baseline/svc/acc" in metrics  # still in metrics.json and the end-of-run table
    assert not any(tag.startswith("baseline/") for tag in scalars(run_dir))


def tick_labels_inside(figure) -> bool:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = canvas.get_width_height()
    for ax in figure.axes:
        shown = [ax.xaxis.label, ax.yaxis.label]
        for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            ticks = zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=True)
            low, high = sorted((low, high))
            shown += [label for at, label in ticks if low <= at <= high]  # drawn ones only
        for label in shown:
            if label.get_visible() and label.get_text():
                box = label.get_window_extent(renderer)
                if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
                    return False
    return True


def test_small_figures_keep_their_tick_labels():
    rates = list(np.linspace(0.01, 0.0001, 100))
    assert tick_labels_inside(figures.learning_rate(rates, "epoch"))
    assert tick_labels_inside(figures.loss_curves({"train/loss": [(1, 0.7), (2, 0.0123)]}))
    matrix = np.diag([120, 3, 95]) + 1
    assert tick_labels_inside(figures.confusion(matrix))


def test_confusion_counts_are_white_on_dark_cells_and_zeros_grey():
    matrix = np.array([[180, 2], [0, 40]])
    texts = {t.get_text(): t.get_color() for t in figures.confusion(matrix).axes[0].texts}
    assert texts == {"180": "white", "2": "black", "0": "grey", "40": "black"}


def test_confusion_axes_carry_the_class_names_in_a_readable_font():
    matrix = np.array([[30, 2, 0], [5, 60, 3], [0, 4, 12]])
    ax = figures.confusion(matrix, ["I", "II", "III"]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["I", "II", "III"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["I", "II", "III"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert len(ax.texts) == 9 and min(t.get_fontsize() for t in ax.texts) >= 10
    named = figures.confusion(np.array([[50, 3], [0, 33]]), ["benign", "malignant"])
    assert tick_labels_inside(named)  # long names turned, not cut off
    digits = figures.confusion(np.eye(10, dtype=int) * 20).axes[0]
    assert [t.get_text() for t in digits.get_xticklabels()] == [str(i) for i in range(10)]


def test_a_constant_learning_rate_is_a_flat_line_on_an_axis_from_zero():
    ax = figures.learning_rate([0.01] * 100, "epoch").axes[0]
    low, high = ax.get_ylim()
    assert low == 0 and 0.01 < high <= 0.0115  # not 0.0096-0.0104
    assert not ax.yaxis.get_major_formatter().get_useOffset()


def test_image_grid_says_what_its_labels_are_and_draws_no_empty_frames():
    images = np.zeros((10, 8, 8))
    predicted, actual = np.array([3, 1, 2, 3, 4, 5, 6, 7, 8, 9]), np.arange(10)
    figure = figures.image_grid(images, predicted, actual)
    assert figure.get_suptitle() == "test images: true label, (predicted) in red where wrong"
    assert len(figure.axes) == 10  # 16 places in two rows of 8, the last 6 removed
    titles = [(ax.get_title(), ax.title.get_color()) for ax in figure.axes[:2]]
    assert titles == [("0 (3)", "red"), ("1", "black")]


def test_filters_have_a_title_one_scale_and_no_empty_frames():
    weights = np.random.default_rng(0).normal(size=(12, 1, 3, 3))
    figure = figures.filters(weights)
    assert figure.get_suptitle() == "first-layer filters (3x3): blue +, red -"
    assert len(figure.axes) == 12
    reach = np.abs(weights).max()
    assert all(ax.images[0].get_clim() == (-reach, reach) for ax in figure.axes)


def test_the_loss_picture_marks_the_best_val_loss_and_shades_the_overfitting():
    train = [(s, 1.0 / s) for s in range(1, 1001)]
    val = [(100, 0.073), (500, 0.12), (1000, 0.18)]
    ax = figures.loss_curves({"train/loss": train, "val/loss": val}).axes[0]
    (best,) = [line for line in ax.get_lines() if line.get_label().startswith("best")]
    assert best.get_label() == "best val/loss (step 100)"
    assert best.get_xydata().tolist() == [[100, 0.073]]
    assert ax.get_title() == "loss: val/loss ends 147% above its best"
    (shade,) = ax.patches
    assert shade.get_label() == "after the best: overfit"
    near = figures.loss_curves({"val/loss": [(100, 0.073), (1000, 0.078)]}).axes[0]
    assert near.get_title() == "loss" and not near.patches  # within 10% of the best


def test_the_pictures_before_training_are_the_planned_rate_and_the_data(make_config):
    composed = make_config()  # the default job: Adam 0.01, no schedule, 1000 epochs
    found = start_figures(composed, build_data(composed))
    assert set(found) == {"schedule/learning_rate", "data/train"}
    (line,) = found["schedule/learning_rate"].axes[0].get_lines()
    assert list(line.get_ydata()) == [0.01] * 1000
