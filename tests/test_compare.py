"""The lesson's comparison: two panels of settings over seeds, a figure and a table."""

from __future__ import annotations

import csv

import pytest
from conftest import held_elsewhere, scalars

from litlab.compare import PANELS, compare
from litlab.errors import RunBusy
from litlab.figures import comparison


@pytest.mark.slow
def test_compare_writes_the_figure_and_the_table(tmp_path):
    words = [f"runs_dir={tmp_path}", "trainer.max_epochs=60", "trainer.check_val_every_n_epoch=30"]
    folder, rows = compare([*words, "callbacks.dashboard=null"], seeds="1", jobs=2)
    assert (folder / "comparison.png").stat().st_size > 0
    settings = [(row["panel"], row["setting"]) for row in rows]
    assert settings == [
        ("optimisers", f"optimizer={name}") for name in ("adam", "momentum", "rmsprop", "sgd")
    ] + [
        ("learning-rate decay (Adam)", f"scheduler={name}")
        for name in ("cosine", "exponential", "none", "step")
    ]
    with open(folder / "comparison.csv") as f:
        assert [r["setting"] for r in csv.DictReader(f)] == [s for _, s in settings]
    # every run is a TensorBoard run; steps to 95% agree with its logged accuracy
    (adam,) = list(tmp_path.glob("sweeps/*/optimizer=adam/run/*"))  # one seed: not in the name
    accuracy = scalars(adam)["train/acc"]
    first = next((step + 1 for step, value in accuracy if value >= 0.95), None)
    expected = float("nan") if first is None else first
    assert rows[0]["steps to 95%"] == pytest.approx(expected, nan_ok=True)
    assert len(list(tmp_path.glob("sweeps/*/*/run/*/events.out.tfevents.*"))) >= 8


def test_comparison_figure_has_a_line_and_band_per_setting():
    import numpy as np

    steps = np.array([10, 20, 30])
    curves = {"a": (steps, np.array([1.0, 0.5, 0.25]), np.array([0.1, 0.1, 0.1]))}
    figure = comparison({"left": curves, "right": curves})
    assert [ax.get_title() for ax in figure.axes] == ["left", "right"]
    (line,) = figure.axes[0].get_lines()
    assert line.get_ydata().tolist() == [1.0, 0.5, 0.25] and len(figure.axes[0].collections) == 1


def test_a_compare_whose_sweep_runs_elsewhere_is_refused_and_writes_nothing(tmp_path):
    """A second `litlab compare` of the same words: its first sweep's folder is held."""
    from litlab.sweep import _name

    words = [*PANELS["optimisers"], "trainer.log_every_n_steps=10", f"runs_dir={tmp_path}"]
    folder = tmp_path / "sweeps" / _name([*words, "seed=1,2,3"])
    folder.mkdir(parents=True)
    with held_elsewhere(folder) as pid, pytest.raises(RunBusy, match=f"process {pid}"):
        compare([f"runs_dir={tmp_path}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweeps"]  # no compare/ folder
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]
