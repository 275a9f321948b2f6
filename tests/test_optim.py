"""Optimisers and schedules from config: each builds and steps, rates match hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from litlab.config import compose, groups
from litlab.optim import configure, planned_rates


def built(*words: str, lr0: float | None = None) -> dict:
    cfg = compose(list(words)).cfg
    optimizer = OmegaConf.to_container(cfg.optimizer)
    if lr0 is not None:
        optimizer["lr"] = lr0
    scheduler = OmegaConf.to_container(cfg.scheduler) if cfg.scheduler else None
    return configure(optimizer, scheduler, [torch.nn.Parameter(torch.tensor([1.0, -2.0]))])


def rates(answer: dict, steps: int, metric: float = 1.0) -> list[float]:
    """The learning rate at intervals 0..steps-1, stepping the schedule as Lightning does."""
    optimizer, scheduler = answer["optimizer"], answer["lr_scheduler"]["scheduler"]
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(metric) if isinstance(
            scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
        ) else scheduler.step()
    return out


def descend(optimizer: torch.optim.Optimizer, grad: list[float], steps: int) -> torch.Tensor:
    (w,) = optimizer.param_groups[0]["params"]
    for _ in range(steps):
        w.grad = torch.tensor(grad)
        optimizer.step()
    return w.detach().clone()


def test_sgd_is_the_lessons_update_rule():
    w = descend(built("optimizer=sgd", lr0=0.5)["optimizer"], [0.2, -0.4], steps=1)
    assert w.tolist() == pytest.approx([1.0 - 0.5 * 0.2, -2.0 + 0.5 * 0.4])


def test_momentum_adds_the_previous_step():
    w = descend(built("optimizer=momentum", lr0=0.1)["optimizer"], [1.0, 1.0], steps=2)
    # velocity: 1, then 0.9 * 1 + 1 = 1.9; w = w0 - 0.1 * (1 + 1.9)
    assert w.tolist() == pytest.approx([1.0 - 0.29, -2.0 - 0.29])


def test_nesterov_looks_ahead():
    w = descend(built("optimizer=nesterov", lr0=0.1)["optimizer"], [1.0, 1.0], steps=2)
    # steps use g + 0.9 * velocity: 1 + 0.9 * 1 = 1.9, then 1 + 0.9 * 1.9 = 2.71
    assert w.tolist() == pytest.approx([1.0 - 0.461, -2.0 - 0.461])


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_first_step_has_the_size_of_the_rate(name):
    answer = built(f"optimizer={name}", lr0=0.01)
    w = descend(answer["optimizer"], [3.0, -0.001], steps=1)
    decay = 1 - 0.01 * answer["optimizer"].defaults["weight_decay"]  # AdamW shrinks w first
    assert w.tolist() == pytest.approx([1.0 * decay - 0.01, -2.0 * decay + 0.01], rel=1e-4)


def test_rmsprop_first_step_divides_by_the_running_rms():
    w = descend(built("optimizer=rmsprop", lr0=0.01)["optimizer"], [2.0, 2.0], steps=1)
    step = 0.01 * 2.0 / (math.sqrt(0.01 * 4.0) + 1e-8)  # v = (1 - alpha) g^2
    assert w.tolist() == pytest.approx([1.0 - step, -2.0 - step])


@pytest.mark.parametrize("name", groups()["optimizer"])
def test_every_optimizer_descends_a_quadratic(name):
    w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
    cfg = OmegaConf.to_container(compose([f"optimizer={name}"]).cfg.optimizer)
    optimizer = configure(cfg, None, [w])["optimizer"]
    for _ in range(50):
        optimizer.zero_grad()
        (w**2).sum().backward()
        optimizer.step()
    assert (w**2).sum().item() < 25.0 * 0.9


def test_step_decay_halves_every_step_size():
    lr = rates(built("scheduler=step", "scheduler.step_size=3", lr0=0.8), 8)
    assert lr == pytest.approx([0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2])


def test_multistep_divides_at_each_milestone():
    lr = rates(built("scheduler=multistep", "scheduler.milestones=[2,4]", lr0=1.0), 6)
    assert lr == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])


def test_exponential_decay():
    lr = rates(built("scheduler=exponential", lr0=0.01), 1001)
    assert lr[0] == 0.01 and lr[10] == pytest.approx(0.01 * 0.997**10)
    assert lr[1000] == pytest.approx(0.01 * 0.997**1000)


def test_cosine_decays_to_eta_min_over_max_epochs():
    lr = rates(built("scheduler=cosine", "trainer.max_epochs=100", lr0=0.01), 101)
    expected = [0.01 * (1 + math.cos(math.pi * t / 100)) / 2 for t in range(101)]
    assert lr == pytest.approx(expected, abs=1e-9)


def test_cosine_with_warmup_rises_linearly_then_decays():
    words = ["scheduler=cosine", "scheduler.warmup=4", "trainer.max_epochs=14"]
    lr = rates(built(*words, lr0=1.0), 15)
    assert lr[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert lr[4:] == pytest.approx(
        [(1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)], abs=1e-9
    )


def test_plateau_divides_after_patience_rounds_without_improvement():
    lr = rates(built("scheduler=plateau", "scheduler.patience=2", lr0=1.0), 6, metric=1.0)
    # round 0 sets the best; rounds 1, 2 do not improve; after round 3 (> patience) it cuts
    assert lr == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1])


@pytest.mark.parametrize("name", [n for n in groups()["scheduler"] if n != "none"])
def test_lightning_gets_interval_and_frequency_from_config(name):
    answer = built(f"scheduler={name}")
    cfg = compose([f"scheduler={name}"]).cfg.scheduler
    assert answer["lr_scheduler"]["interval"] == cfg.interval
    assert answer["lr_scheduler"]["frequency"] == cfg.frequency


def test_any_torch_optimizer_can_be_named_without_code():
    answer = built("optimizer._target_=torch.optim.Adagrad", "optimizer.lr=0.1", "~optimizer.fused")
    assert isinstance(answer["optimizer"], torch.optim.Adagrad)


@pytest.mark.parametrize("name", groups()["scheduler"])
def test_planned_rates_are_those_the_schedule_gives(name):
    """What the dashboard draws before training equals stepping the real schedule."""
    cfg = compose([f"scheduler={name}", "trainer.max_epochs=40", "optimizer=sgd"]).cfg
    optimizer = OmegaConf.to_container(cfg.optimizer)
    scheduler = OmegaConf.to_container(cfg.scheduler) if cfg.scheduler else None
    planned = planned_rates(optimizer, scheduler, 40)
    if scheduler is None or name == "plateau":
        assert planned == [0.5] * 40
    else:
        assert planned == pytest.approx(
            rates(configure(optimizer, scheduler, [torch.nn.Parameter(torch.ones(1))]), 40)
        )
