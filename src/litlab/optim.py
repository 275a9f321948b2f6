"""The optimiser and schedule partials from the config, our warm-up cosine, planned rates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.optim import Optimizer
from torch.optim import lr_scheduler as schedules

from litlab.config import SourcedConfig, instantiate
from litlab.schema import SCHEDULER_OPTIONS

OptimizerFactory = Callable[..., Optimizer]  # called with the parameters
SchedulerFactory = Callable[[Optimizer], schedules.LRScheduler | schedules.ReduceLROnPlateau]


def optimizer_factories(
    composed: SourcedConfig,
) -> tuple[OptimizerFactory, SchedulerFactory | None, dict[str, Any]]:
    """The optimiser and scheduler partials, and the options that tell Lightning when to
    step the scheduler (interval, frequency, monitor)."""
    node = composed.cfg.get("scheduler")
    if node is None:
        return instantiate(composed.cfg.optimizer), None, {}
    schedule = OmegaConf.masked_copy(node, [k for k in node if k != SCHEDULER_OPTIONS])
    options = dict(node.get(SCHEDULER_OPTIONS) or {})
    return instantiate(composed.cfg.optimizer), instantiate(schedule), options


def optimizer_errors(composed: SourcedConfig) -> list[str]:
    """The optimiser and schedule built on a stand-in parameter: what only building tells
    (a milestone list that is not sorted, a warm-up longer than the run)."""
    optimizer, scheduler, _ = optimizer_factories(composed)
    path = "optimizer"
    try:
        built = optimizer([torch.zeros(1, requires_grad=True)])
        path = "scheduler"
        if scheduler is not None:
            scheduler(built)
    except (ValueError, TypeError) as exc:
        node = OmegaConf.select(composed.cfg, path)
        return [f"{path} ({composed.source(path)}, {node._target_}): {exc}"]
    return []


def warmup_cosine(
    optimizer: Optimizer, total: int, warmup: int = 0, eta_min: float = 0.0
) -> schedules.LRScheduler:
    """Cosine decay from the optimiser's rate to `eta_min` over `total` intervals, after a
    linear warm-up over the first `warmup` of them (rising from lr / (warmup + 1))."""
    if not 0 <= warmup < total:
        raise ValueError(f"warmup={warmup}, total={total}: need 0 <= warmup < total")
    cosine = schedules.CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=eta_min)
    if warmup == 0:
        return cosine
    ramp = schedules.LinearLR(optimizer, start_factor=1 / (warmup + 1), total_iters=warmup)
    return schedules.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def planned_rates(
    optimizer: OptimizerFactory, scheduler: SchedulerFactory | None, intervals: int
) -> list[float]:
    """The learning rate at each of `intervals` scheduler intervals, from the config alone.
    A plateau schedule is drawn as if the metric always improved: it never cuts the rate."""
    opt = optimizer([torch.zeros(1, requires_grad=True)])
    sched = scheduler(opt) if scheduler is not None else None
    rates = []
    for t in range(intervals):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step(-t) if isinstance(sched, schedules.ReduceLROnPlateau) else sched.step()
    return rates
