"""Sweeps: a grid of independent runs, checked first, resumable, ranked."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from litlab.config import ConfigError
from litlab.sweep import grid, summarise, sweep

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "diabetes_cohort.csv"


def test_grid_is_every_combination_and_lists_stay_whole():
    runs = grid(["optimizer=sgd,adam", "seed=1,2", "model.hidden=[8,8]"])
    assert runs == [
        ["optimizer=sgd", "seed=1", "model.hidden=[8,8]"],
        ["optimizer=sgd", "seed=2", "model.hidden=[8,8]"],
        ["optimizer=adam", "seed=1", "model.hidden=[8,8]"],
        ["optimizer=adam", "seed=2", "model.hidden=[8,8]"],
    ]


def test_summary_averages_seeds_and_ranks_by_the_monitor():
    results = [
        (["optimizer=sgd", "seed=1"], {"best_val/loss": 0.5, "test/acc": 0.8}),
        (["optimizer=sgd", "seed=2"], {"best_val/loss": 0.7, "test/acc": 0.6}),
        (["optimizer=adam", "seed=1"], {"best_val/loss": 0.2, "test/acc": 0.9}),
        (["optimizer=adam", "seed=2"], None),  # failed
    ]
    rows = summarise(results, ["optimizer", "seed"], "best_val/loss", "min")
    assert [r["setting"] for r in rows] == ["optimizer=adam", "optimizer=sgd"]
    assert rows[0]["runs"] == 1 and rows[0]["failed"] == 1
    assert rows[1]["best_val/loss"] == pytest.approx(0.6) and rows[1][
        "best_val/loss std"
    ] == pytest.approx(0.1414, abs=1e-4)
    assert [r["setting"] for r in summarise(results, ["optimizer", "seed"], "test/acc", "max")] == [
        "optimizer=adam",
        "optimizer=sgd",
    ]


def test_a_bad_value_stops_the_sweep_before_any_run(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"sweep run .*optimizer.lr=-1: optimizer.lr=-1 \(the command line\): must be >= 0",
    ):
        sweep([f"runs_dir={tmp_path}", "optimizer.lr=0.1,-1"])
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_failed_runs_are_reported_the_others_finish_and_reruns_skip(tmp_path):
    words = [
        f"runs_dir={tmp_path}",
        "data=csv",
        f"data.path={EXAMPLE},{tmp_path}/none.csv",
        "seed=1,2",
        "trainer.max_epochs=20",
        "trainer.check_val_every_n_epoch=10",
    ]
    folder, rows = sweep(words, jobs=2)
    by_setting = {row["setting"]: row for row in rows}
    assert by_setting[f"data.path={EXAMPLE}"]["runs"] == 2
    assert by_setting[f"data.path={tmp_path}/none.csv"]["failed"] == 2
    with open(folder / "sweep_summary.csv") as f:
        assert [row["setting"] for row in csv.DictReader(f)] == [r["setting"] for r in rows]
    finished = sorted(folder.glob("*/run/*/metrics.json"))
    assert len(finished) == 2
    again_folder, again = sweep(words, jobs=2)
    assert (
        again_folder == folder and sorted(folder.glob("*/run/*/metrics.json")) == finished
    )  # skipped
    assert again[0]["test/r2"] == rows[0]["test/r2"]
