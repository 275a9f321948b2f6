"""The optimiser and schedule as partials from the config (`_partial_: true`), which the
LightningModule calls in `configure_optimizers`; our warm-up cosine; the planned rates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    ReduceLROnPlateau,
    SequentialLR,
)

from litlab.config import SourcedConfig, instantiate
from litlab.errors import ConfigError
from litlab.schema import SCHEDULER_OPTIONS

OptimizerFactory = Callable[..., Optimizer]  # called with the parameters
SchedulerFactory = Callable[[Optimizer], LRScheduler | ReduceLROnPlateau]


def optimizer_factories(
    composed: SourcedConfig,
) -> tuple[OptimizerFactory, SchedulerFactory | None, dict[str, Any]]:
    """The optimiser and scheduler partials, and the options that tell Lightning when to
    step the scheduler (interval, frequency, monitor)."""
    optimizer = _partial(composed, "optimizer", composed.cfg.optimizer)
    node = composed.cfg.get("scheduler")
    if node is None:
        return optimizer, None, {}
    options = dict(node.get(SCHEDULER_OPTIONS) or {})
    schedule = OmegaConf.masked_copy(node, [k for k in node if k != SCHEDULER_OPTIONS])
    return optimizer, _partial(composed, "scheduler", schedule), options


def _partial(composed: SourcedConfig, path: str, node: Any) -> Any:
    try:
        return instantiate(node)
    except (ValueError, TypeError, ModuleNotFoundError) as exc:
        raise ConfigError([_error(composed, path, exc)]) from None


def _error(composed: SourcedConfig, path: str, exc: Exception) -> str:
    node = OmegaConf.select(composed.cfg, path)
    return f"{path} ({composed.source(path)}, {node._target_}): {exc}"


def optimizer_errors(composed: SourcedConfig) -> list[str]:
    """The optimiser and schedule built on a stand-in parameter: what only building tells
    (a milestone list that is not sorted, a warm-up longer than the run)."""
    try:
        optimizer, scheduler, _ = optimizer_factories(composed)
    except ConfigError as exc:
        return exc.errors
    path = "optimizer"
    try:
        built = optimizer([torch.zeros(1, requires_grad=True)])
        path = "scheduler"
        if scheduler is not None:
            scheduler(built)
    except (ValueError, TypeError) as exc:
        return [_error(composed, path, exc)]
    return []


def warmup_cosine(
    optimizer: Optimizer, total: int, warmup: int = 0, eta_min: float = 0.0
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
            sched.step(-t) if isinstance(sched, ReduceLROnPlateau) else sched.step()
    return rates
