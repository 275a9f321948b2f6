"""`train(composed)`: the recipe, top to bottom. Seed, data, model, trainer; fit; test."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import OmegaConf

from litlab.config import Composed, ConfigError, RunConfig, instantiate, validate
from litlab.module import ClassifierModule
from litlab.optim import configure


def train(composed: Composed) -> tuple[Path, dict[str, Any]]:
    """Train and test the configured job in a new run folder; return the folder and metrics."""
    validate(composed)
    cfg = composed.cfg
    check_optimization(composed)
    run = RunConfig(**{key: cfg[key] for key in ("name", "runs_dir", "seed")})
    run_dir = claim_run_dir(Path(run.runs_dir).expanduser() / run.name)
    try:
        L.seed_everything(run.seed)
        datamodule = build(composed, "data")
        net = build(composed, "model", in_features=datamodule.num_features, out_features=1)
        module = ClassifierModule(net, _plain(cfg.optimizer), _plain(cfg.scheduler))
        trainer = build_trainer(composed, run_dir)
    except BaseException:
        shutil.rmtree(run_dir)  # nothing was written yet: leave no empty run behind
        raise
    OmegaConf.save(cfg, run_dir / "config.yaml")
    trainer.fit(module, datamodule=datamodule)
    metrics = evaluate(trainer, module, datamodule)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return run_dir, metrics


def build(composed: Composed, path: str, **injected: Any) -> Any:
    """`instantiate` a node; a ValueError or TypeError from its class names the node."""
    node = OmegaConf.select(composed.cfg, path)
    try:
        return instantiate(node, **injected)
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"{path} ({composed.source(path)}, {node._target_}): {exc}"]) from None


def check_optimization(composed: Composed) -> None:
    """Build the optimiser and schedule on a stand-in parameter, so that a bad value
    (a negative learning rate, a milestone list that is not sorted) stops the run before
    any folder is made."""
    cfg = composed.cfg
    lr = cfg.optimizer.get("lr")
    if isinstance(lr, int | float) and lr < 0:
        where = composed.source("optimizer.lr")
        raise ConfigError([f"optimizer.lr={lr} ({where}): must be >= 0 (the size of each step)"])
    errors = []
    params = [torch.zeros(1, requires_grad=True)]
    for node in ("optimizer", "scheduler") if cfg.scheduler else ("optimizer",):
        try:
            configure(_plain(cfg.optimizer), _plain(cfg.get(node)) if node == "scheduler" else None, params)
        except (ValueError, TypeError) as exc:
            errors.append(f"{node} ({composed.source(node)}, {cfg[node]._target_}): {exc}")
    if errors:
        raise ConfigError(errors)


def build_trainer(composed: Composed, run_dir: Path) -> L.Trainer:
    """The Trainer with its logger and callbacks, all writing inside `run_dir`."""
    cfg = composed.cfg
    # name="" and version="" put the events straight into the run folder, and with them
    # Lightning's checkpoint callback picks <run_dir>/checkpoints.
    logger = build(composed, "logger", save_dir=run_dir, name="", version="") if cfg.logger else False
    callbacks = [build(composed, f"callbacks.{name}") for name in cfg.get("callbacks") or {}]
    return build(composed, "trainer", logger=logger, callbacks=callbacks, default_root_dir=run_dir)


def evaluate(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, Any]:
    """Test the best checkpoint (the current weights when none was kept) and collect metrics."""
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    (results,) = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics: dict[str, Any] = {key: float(value) for key, value in sorted(results.items())}
    if best:
        metrics["best_checkpoint"] = os.path.relpath(best, trainer.default_root_dir)
        metrics[f"best_{checkpoint.monitor}"] = float(checkpoint.best_model_score)
    metrics["epochs"] = trainer.current_epoch
    return metrics


def claim_run_dir(parent: Path) -> Path:
    """Create `<parent>/<YYYY-MM-DD_HH-MM-SS>`; runs started in the same second get `_1`, `_2`...

    `mkdir` without `exist_ok` is atomic, so two processes never get the same folder.
    """
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        run_dir = parent / (stamp if attempt == 0 else f"{stamp}_{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"{parent}: 1000 runs started in the same second")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
