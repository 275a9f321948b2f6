"""Optimisers and learning-rate schedules, built from their config nodes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from litlab.config import SCHEDULER_KEYS, instantiate


def configure(
    optimizer: dict[str, Any], scheduler: dict[str, Any] | None, params: Iterable[torch.Tensor]
) -> dict[str, Any]:
    """Lightning's `configure_optimizers` answer: the optimiser over `params` and, if a
    schedule is chosen, its lr_scheduler dict (interval, frequency, monitor from config)."""
    opt = instantiate(optimizer, params=params)
    return {"optimizer": opt, **schedule(opt, scheduler)}


def schedule(opt: torch.optim.Optimizer, scheduler: dict[str, Any] | None) -> dict[str, Any]:
    """`{"lr_scheduler": ...}` for the scheduler node on `opt`, or {} without one."""
    if scheduler is None:
        return {}
    kwargs = {k: v for k, v in scheduler.items() if k not in SCHEDULER_KEYS}
    lightning_keys = {k: v for k, v in scheduler.items() if k in SCHEDULER_KEYS}
    return {"lr_scheduler": {"scheduler": instantiate(kwargs, optimizer=opt), **lightning_keys}}


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total: int, warmup: int = 0, eta_min: float = 0.0
) -> LRScheduler:
    """Cosine decay from the optimiser's rate to `eta_min` over `total` intervals, after a
    linear warm-up over the first `warmup` of them (rising from lr / (warmup + 1))."""
    if not 0 <= warmup < total:
        raise ValueError(f"warmup={warmup}, total={total}: need 0 <= warmup < total")
    cosine = CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=eta_min)
    if warmup == 0:
        return cosine
    ramp = LinearLR(optimizer, start_factor=1 / (warmup + 1), total_iters=warmup)
    return SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def planned_rates(
    optimizer: dict[str, Any], scheduler: dict[str, Any] | None, intervals: int
) -> list[float]:
    """The learning rate at each of `intervals` scheduler intervals, worked out from the
    config alone, before training. A plateau schedule is drawn as if the metric always
    improved (it never cuts the rate), since it reacts to results not known yet."""
    answer = configure(optimizer, scheduler, [torch.zeros(1, requires_grad=True)])
    opt, rates = answer["optimizer"], []
    sched = answer.get("lr_scheduler", {}).get("scheduler")
    for t in range(intervals):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(-t)
        elif sched is not None:
            sched.step()
    return rates
