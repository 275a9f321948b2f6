"""Validation and schedules scale with the run's length, and a setting
that does nothing in this run is said once at start."""

from __future__ import annotations

import pytest

from litlab.config import every, fraction
from litlab.optim import optimizer_factories, planned_rates
from litlab.run_length import no_op_notes


def test_fraction_and_every_by_hand():
    assert [fraction(0.25, n) for n in (1000, 100, 3, 1)] == [250, 25, 1, 1]
    assert [every(0.05, n) for n in (1000, 100, 130, 30, 7)] == [50, 5, 5, 1, 1]
    assert fraction(0.5, None) is None and every(0.05, -1) is None  # no set length


@pytest.mark.parametrize("epochs", [30, 100, 130, 1000])
def test_the_default_job_validates_at_its_last_epoch(make_config, epochs):
    cfg = make_config(f"trainer.max_epochs={epochs}").cfg
    every_n = cfg.trainer.check_val_every_n_epoch
    assert epochs % every_n == 0 and epochs // every_n >= min(epochs, 20)


@pytest.mark.parametrize("scheduler", ["step", "multistep", "exponential", "cosine"])
def test_every_schedule_decays_within_a_100_epoch_run(make_config, scheduler):
    composed = make_config(f"scheduler={scheduler}", "trainer.max_epochs=100")
    optimizer, schedule, _ = optimizer_factories(composed)
    rates = planned_rates(optimizer, schedule, 100)
    assert rates[-1] < 0.8 * rates[0]
    assert not no_op_notes(composed.cfg)


def test_step_and_multistep_keep_the_1000_epoch_values(make_config):
    assert make_config("scheduler=step").cfg.scheduler.step_size == 250
    assert list(make_config("scheduler=multistep").cfg.scheduler.milestones) == [500, 800]


def test_plateau_checks_often_enough_to_act_in_100_epochs(make_config):
    cfg = make_config("scheduler=plateau", "trainer.max_epochs=100").cfg
    rounds = 100 // cfg.scheduler.lightning.frequency
    assert rounds > cfg.scheduler.patience
    assert not no_op_notes(cfg)


@pytest.mark.parametrize(
    "words, note",
    [
        (["scheduler=step", "scheduler.step_size=500"], "scheduler.step_size=500: the first decay"),
        (["scheduler=multistep", "scheduler.milestones=[200]"], "every milestone comes after"),
        (["trainer.check_val_every_n_epoch=200"], "nothing is validated, so no best.ckpt"),
        (["trainer.check_val_every_n_epoch=30"], "the last 10 epochs are not validated"),
        (["callbacks.dashboard.every_n_epochs=500"], "callbacks.dashboard.every_n_epochs=500"),
    ],
)
def test_a_setting_that_does_nothing_in_this_run_is_noted(make_config, words, note):
    notes = no_op_notes(make_config("trainer.max_epochs=100", *words).cfg)
    assert len(notes) == 1 and note in notes[0]


def test_notes_are_printed_once_before_the_run(capsys, tmp_path):
    from litlab.cli import main

    words = [f"runs_dir={tmp_path}", "scheduler=step", "scheduler.step_size=500"]
    assert main(["train", "--print-config", "trainer.max_epochs=100", *words]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("litlab: note: scheduler.step_size=500")
