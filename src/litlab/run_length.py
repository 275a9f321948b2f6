"""Run-length notes: settings that do nothing in a run of trainer.max_epochs epochs
(a validation cadence, a schedule or a callback that never comes), said once at start."""

from __future__ import annotations

from omegaconf import DictConfig

from litlab.schema import SCHEDULER_OPTIONS


def no_op_notes(cfg: DictConfig) -> list[str]:
    """Settings that make a feature do nothing in this run's length: said once at start."""
    epochs = cfg.trainer.get("max_epochs")
    if not isinstance(epochs, int) or epochs < 1:
        return []
    val = cfg.trainer.get("check_val_every_n_epoch")
    notes = []
    if isinstance(val, int) and val > epochs:
        notes.append(
            f"trainer.check_val_every_n_epoch={val} > trainer.max_epochs={epochs}: nothing is "
            "validated, so no best.ckpt, no val/loss, no early stopping"
        )
    elif isinstance(val, int) and epochs % val:
        notes.append(
            f"trainer.check_val_every_n_epoch={val}: the last {epochs % val} epochs are "
            "not validated"
        )
    notes += _schedule_notes(cfg.get("scheduler"), epochs)
    for name, node in (cfg.get("callbacks") or {}).items():
        every = node.get("every_n_epochs") if isinstance(node, DictConfig) else None
        if isinstance(every, int) and every > epochs:
            notes.append(
                f"callbacks.{name}.every_n_epochs={every} > trainer.max_epochs={epochs}: never runs"
            )
    return notes


def _schedule_notes(node: DictConfig | None, epochs: int) -> list[str]:
    """A schedule stepped by epoch whose first change comes after the run's end."""
    options = node.get(SCHEDULER_OPTIONS) if isinstance(node, DictConfig) else None
    if node is None or (options or {}).get("interval", "epoch") != "epoch":
        return []
    end = f"after the run's {epochs} epochs: the rate never changes"
    step, milestones = node.get("step_size"), node.get("milestones")
    if isinstance(step, int) and step >= epochs:
        return [f"scheduler.step_size={step}: the first decay comes {end}"]
    if milestones and min(milestones) >= epochs:
        return [f"scheduler.milestones={list(milestones)}: every milestone comes {end}"]
    patience, every = node.get("patience"), (options or {}).get("frequency", 1)
    if isinstance(patience, int) and isinstance(every, int) and epochs // every <= patience:
        rounds = epochs // every
        return [
            f"scheduler.patience={patience}: the run checks the metric only {rounds} times; "
            "the rate never changes"
        ]
    return []
