"""Validation and schedules scale with the run's length."""

from __future__ import annotations

import pytest

from litlab.config import every, fraction
from litlab.optim import optimizer_factories, planned_rates


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


def test_step_and_multistep_keep_the_1000_epoch_values(make_config):
    assert make_config("scheduler=step").cfg.scheduler.step_size == 250
    assert list(make_config("scheduler=multistep").cfg.scheduler.milestones) == [500, 800]


def test_plateau_checks_often_enough_to_act_in_100_epochs(make_config):
    cfg = make_config("scheduler=plateau", "trainer.max_epochs=100").cfg
    rounds = 100 // cfg.scheduler.lightning.frequency
    assert rounds > cfg.scheduler.patience
