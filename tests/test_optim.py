"""Optimisers and schedules from config: what we own is the wiring (config to partials,
partials to Lightning's lr_scheduler dict), our warm-up cosine, and the planned schedule.
torch's own update rules are torch's to test."""

from __future__ import annotations

import math

import pytest
import torch

from litlab.config import compose, groups
from litlab.module import ClassifierModule
from litlab.optim import optimizer_factories, planned_rates
from litlab.signatures import locate


def configured(*words: str) -> tuple[ClassifierModule, dict]:
    """A module built with the composed optimiser and schedule, and its answer to
    Lightning's configure_optimizers."""
    optimizer, scheduler, options = optimizer_factories(compose(list(words)))
    module = ClassifierModule(torch.nn.Linear(2, 1), optimizer, scheduler, options)
    answer = module.configure_optimizers()
    return module, answer if isinstance(answer, dict) else {"optimizer": answer}


def rates(answer: dict, steps: int, metric: float = 1.0) -> list[float]:
    """The learning rate at intervals 0..steps-1, stepping the schedule as Lightning does."""
    optimizer, scheduler = answer["optimizer"], answer["lr_scheduler"]["scheduler"]
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metric)
        else:
            scheduler.step()
    return out


@pytest.mark.parametrize("name", groups()["optimizer"])
def test_each_optimizer_option_builds_its_class_with_its_values_over_the_modules_parameters(name):
    cfg = compose([f"optimizer={name}"]).cfg.optimizer
    module, answer = configured(f"optimizer={name}")
    optimizer = answer["optimizer"]
    assert type(optimizer) is locate(cfg._target_)
    for key, value in cfg.items():
        if not str(key).startswith("_"):
            assert optimizer.defaults[key] == value
    assert optimizer.param_groups[0]["params"] == list(module.parameters())
    assert "lr_scheduler" not in answer  # scheduler=none: the optimiser alone


@pytest.mark.parametrize("name", [n for n in groups()["scheduler"] if n != "none"])
def test_lightning_gets_the_scheduler_over_the_optimiser_and_its_options(name):
    _, answer = configured(f"scheduler={name}")
    cfg = compose([f"scheduler={name}"]).cfg.scheduler
    config = answer["lr_scheduler"]
    assert config["scheduler"].optimizer is answer["optimizer"]
    assert {k: config[k] for k in cfg.lightning} == dict(cfg.lightning)
    if name != "cosine":  # ours builds torch's SequentialLR or CosineAnnealingLR
        assert type(config["scheduler"]) is locate(cfg._target_)


def test_step_size_reaches_the_scheduler():
    _, answer = configured("scheduler=step", "scheduler.step_size=3", "optimizer.lr=0.8")
    assert rates(answer, 8) == pytest.approx([0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2])


def test_cosine_decays_to_eta_min_over_max_epochs():
    words = ["scheduler=cosine", "trainer.max_epochs=100", "optimizer.lr=0.01"]
    lr = rates(configured(*words)[1], 101)
    expected = [0.01 * (1 + math.cos(math.pi * t / 100)) / 2 for t in range(101)]
    assert lr == pytest.approx(expected, abs=1e-9)


def test_cosine_with_warmup_rises_linearly_then_decays():
    words = ["scheduler=cosine", "scheduler.warmup=4", "trainer.max_epochs=14", "optimizer.lr=1"]
    lr = rates(configured(*words)[1], 15)
    assert lr[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lr[4:] == pytest.approx(
        [(1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)], abs=1e-9
    )


def test_plateau_is_stepped_at_validation_rounds_on_the_monitored_metric():
    cfg = compose(["scheduler=plateau", "trainer.check_val_every_n_epoch=7"]).cfg
    config = configured("scheduler=plateau", "trainer.check_val_every_n_epoch=7")[1]["lr_scheduler"]
    assert config["frequency"] == 7 and config["monitor"] == cfg.scheduler.lightning.monitor


def test_any_torch_optimizer_can_be_named_without_code():
    _, answer = configured(
        "optimizer._target_=torch.optim.Adagrad", "optimizer.lr=0.1", "~optimizer.fused"
    )
    assert isinstance(answer["optimizer"], torch.optim.Adagrad)


@pytest.mark.parametrize("name", groups()["scheduler"])
def test_planned_rates_are_those_the_schedule_gives(name):
    """What the dashboard draws before training equals stepping the real schedule."""
    words = [f"scheduler={name}", "trainer.max_epochs=40", "optimizer=sgd"]
    optimizer, scheduler, _ = optimizer_factories(compose(words))
    planned = planned_rates(optimizer, scheduler, 40)
    if scheduler is None or name == "plateau":
        assert planned == [0.5] * 40
    else:
        assert planned == pytest.approx(rates(configured(*words)[1], 40))
