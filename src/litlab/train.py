"""`train(composed)`: the recipe, top to bottom. Check, seed, data, model, trainer; fit; test."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import OmegaConf

from litlab.config import Composed, ConfigError, RunConfig, instantiate, validate
from litlab.module import ClassifierModule
from litlab.optim import configure

# Lightning 2.6 on torch 2.13 warns about its own use of a deprecated torch API.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# With full-batch GD an epoch is one step: logging every n steps spans epochs, as meant.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval")


@dataclass
class Run:
    """A run ready to fit: its folder and the objects built from the config."""

    dir: Path
    trainer: L.Trainer
    module: L.LightningModule
    datamodule: L.LightningDataModule


def train(composed: Composed) -> tuple[Path, dict[str, Any]]:
    """Train and test the configured job in a new run folder; return the folder and metrics."""
    run = setup(composed)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    metrics = evaluate(run)
    (run.dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return run.dir, metrics


def setup(composed: Composed) -> Run:
    """Check the config, build everything and claim a run folder for it; a config error
    leaves no folder behind."""
    validate(composed)
    check_optimization(composed)
    cfg = composed.cfg
    run = RunConfig(**{key: cfg[key] for key in ("name", "runs_dir", "seed")})
    L.seed_everything(run.seed, verbose=False)  # before the network: the seed fixes its weights
    datamodule = build(composed, "data")
    net = build(composed, "model", in_features=datamodule.num_features, out_features=1)
    module = ClassifierModule(net, _plain(cfg.optimizer), _plain(cfg.scheduler))
    run_dir = claim_run_dir(Path(run.runs_dir).expanduser() / run.name)
    try:
        trainer = build_trainer(composed, run_dir)
    except BaseException:
        _remove_empty(run_dir)
        raise
    OmegaConf.save(cfg, run_dir / "config.yaml")
    return Run(run_dir, trainer, module, datamodule)


def build(composed: Composed, path: str, **injected: Any) -> Any:
    """`instantiate` a node; an error its class raises about its arguments names the node."""
    node = OmegaConf.select(composed.cfg, path)
    try:
        return instantiate(node, **injected)
    except (ValueError, TypeError, MisconfigurationException) as exc:
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
    params = [torch.zeros(1, requires_grad=True)]
    try:
        configure(_plain(cfg.optimizer), None, params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            [f"optimizer ({composed.source('optimizer')}, {cfg.optimizer._target_}): {exc}"]
        ) from None
    try:
        configure(_plain(cfg.optimizer), _plain(cfg.scheduler), params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            [f"scheduler ({composed.source('scheduler')}, {cfg.scheduler._target_}): {exc}"]
        ) from None


def build_trainer(composed: Composed, run_dir: Path) -> L.Trainer:
    """The Trainer with its logger and callbacks, all writing inside `run_dir`."""
    cfg = composed.cfg
    # name="" and version="" put the events straight into the run folder, and with them
    # Lightning's checkpoint callback picks <run_dir>/checkpoints.
    logger = (
        build(composed, "logger", save_dir=run_dir, name="", version="") if cfg.logger else False
    )
    # A callback set to null (callbacks.lr_monitor=null) is switched off.
    callbacks = [
        build(composed, f"callbacks.{name}") for name, node in (cfg.callbacks or {}).items() if node
    ]
    return build(composed, "trainer", logger=logger, callbacks=callbacks, default_root_dir=run_dir)


def evaluate(run: Run) -> dict[str, Any]:
    """Test the best checkpoint (the current weights when none was kept) and collect metrics."""
    trainer, checkpoint = run.trainer, run.trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    (results,) = trainer.test(
        run.module, datamodule=run.datamodule, ckpt_path=best or None, verbose=False
    )
    metrics: dict[str, Any] = {key: float(value) for key, value in sorted(results.items())}
    if best:
        metrics["best_checkpoint"] = os.path.relpath(best, run.dir)
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


def _remove_empty(run_dir: Path) -> None:
    """Remove a run folder that nothing was written to, and its parents if now empty."""
    shutil.rmtree(run_dir)
    for parent in run_dir.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty, or not ours to remove
            return


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
