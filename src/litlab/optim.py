"""The optimiser and schedule: partials from the config (`_partial_: true`), called by
the LightningModule in `configure_optimizers`; a schedule of our own; the rates drawn
before training."""

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
    """The optimiser and scheduler as partials, and the options that tell Lightning when
    to step the scheduler (interval, frequency, monitor)."""
    optimizer = _partial(composed, "optimizer", composed.cfg.optimizer)
    node = composed.cfg.get("scheduler")
    if node is None:
        return optimizer, None, {}
    options = OmegaConf.to_container(node.get(SCHEDULER_OPTIONS) or OmegaConf.create())
    schedule = OmegaConf.masked_copy(node, [k for k in node if k != SCHEDULER_OPTIONS])
    return optimizer, _partial(composed, "scheduler", schedule), options


def _partial(composed: SourcedConfig, path: str, node: Any) -> Any:
    try:
        return instantiate(node)
    except (ValueError, TypeError, ModuleNotFoundError) as exc:
        target = f", {node._target_}" if path == "optimizer" else ""
        raise ConfigError([f"{path} ({composed.source(path)}{target}): {exc}"]) from None


def optimizer_errors(composed: SourcedConfig) -> list[str]:
    """The optimiser and schedule built on a stand-in parameter: what only building tells
    (a milestone list that is not sorted, a warm-up longer than the run)."""
    errors: list[str] = []
    try:
        optimizer, scheduler, _ = optimizer_factories(composed)
        opt = _attempt(
            errors, composed, "optimizer", optimizer, [torch.zeros(1, requires_grad=True)]
        )
        if opt is not None and scheduler is not None:
            _attempt(errors, composed, "scheduler", scheduler, opt)
    except ConfigError as exc:
        errors += exc.errors
    return errors


def _attempt(errors: list[str], composed: SourcedConfig, path: str, make: Any, *args: Any) -> Any:
    try:
        return make(*args)
    except (ValueError, TypeError) as exc:
        node = OmegaConf.select(composed.cfg, path)
        errors.append(f"{path} ({composed.source(path)}, {node._target_}): {exc}")
        return None


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


def lr_scheduler_config(
    scheduler: SchedulerFactory, optimizer: Optimizer, options: dict[str, Any]
) -> dict[str, Any]:
    """Lightning's lr_scheduler dict: the scheduler over `optimizer`, and `options`
    (interval, frequency, monitor) saying when Lightning steps it."""
    return {"scheduler": scheduler(optimizer), **options}


def planned_rates(
    optimizer: OptimizerFactory, scheduler: SchedulerFactory | None, intervals: int
) -> list[float]:
    """The learning rate at each of `intervals` scheduler intervals, worked out from the
    config alone, before training. A plateau schedule is drawn as if the metric always
    improved (it never cuts the rate), since it reacts to results not known yet."""
    opt = optimizer([torch.zeros(1, requires_grad=True)])
    sched = scheduler(opt) if scheduler is not None else None
    rates = []
    for t in range(intervals):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if isinstance(sched, ReduceLROnPlateau):
            sched.step(-t)
        elif sched is not None:
            sched.step()
    return rates
