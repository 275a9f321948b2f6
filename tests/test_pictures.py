"""Issue 16 item 10: the loss figure draws every training step, small figures keep their
tick labels, confusion counts are readable, and baselines are not single-point scalars."""

from __future__ import annotations

import numpy as np
from conftest import scalars
from matplotlib.backends.backend_agg import FigureCanvasAgg

from litlab import figures
from litlab import train as recipe
from litlab.dashboard import Dashboard
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


def test_confusion_counts_are_white_on_dark_cells():
    matrix = np.array([[180, 2], [0, 40]])
    texts = {t.get_text(): t.get_color() for t in figures.confusion(matrix).axes[0].texts}
    assert texts == {"180": "white", "2": "black", "40": "black"}
