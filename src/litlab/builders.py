"""Objects from a checked config: the data, the LightningModule around its network, the
Trainer with its loggers and callbacks. The recipe, eval and predict build through these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import OmegaConf

from litlab.callbacks import DivergenceCheck, RandomState, SignalStop, StoreConfig
from litlab.checkpoints import AtomicCheckpointIO
from litlab.config import ConfigError, SourcedConfig, instantiate
from litlab.data.base import TensorDataModule, contract_errors
from litlab.errors import DataError
from litlab.loggers import run_arguments
from litlab.optim import optimizer_factories
from litlab.schema import target_nodes
from litlab.signatures import locate, signature

AUTO_MODULE = "litlab.module.auto"  # configs/module/auto.yaml
POINTS = 20  # logged points of train/loss and the learning rate, at least, in any run
# Logging costs about as much as a training step, so a long run logs every LOG_EVERY steps.
LOG_EVERY = 50


def build_node(composed: SourcedConfig, path: str, **injected: Any) -> Any:
    """`instantiate` a node; an error its class raises about its arguments names the node."""
    node = OmegaConf.select(composed.cfg, path)
    try:
        return instantiate(node, **injected)
    # ModuleNotFoundError: a class's optional package (the check names litlab's own)
    except (ValueError, TypeError, MisconfigurationException, ModuleNotFoundError) as exc:
        raise ConfigError([f"{path} ({composed.source(path)}, {node._target_}): {exc}"]) from None


def build_data(
    composed: SourcedConfig, fold: int | None = None, stored: dict[str, Any] | None = None
) -> TensorDataModule:
    """The data module, split and encoded now (`fold` of a cross-validation): a table that
    cannot be used stops before a folder is made; one that is not the checkpoint's
    (`stored`) is refused."""
    datamodule = build_node(composed, "data", **({} if fold is None else {"fold": fold}))
    try:
        datamodule.setup("fit")  # Lightning's own call later finds it done
        if stored is not None:
            datamodule.verify(stored)
    except DataError:  # the table's fault, not the config's: its own one line
        raise
    except ValueError as exc:
        raise ConfigError([f"data ({composed.source('data')}): {exc}"]) from None
    missing = contract_errors(datamodule)
    if missing:
        raise ConfigError(
            [
                f"data ({composed.source('data')}, {type(datamodule).__name__}): a data module "
                f"must provide {', '.join(missing)} (see litlab.data.base.TensorDataModule)"
            ]
        )
    return datamodule


def build_module(composed: SourcedConfig, datamodule: TensorDataModule) -> L.LightningModule:
    """The network, sized by the data, inside the LightningModule that trains it; with
    module=auto the one the data names for its task, recorded in the config."""
    if composed.cfg.module.get("_target_") == AUTO_MODULE:
        if datamodule.module_target is None:
            raise ConfigError(
                [
                    f"module=auto ({composed.source('module')}): {type(datamodule).__name__} "
                    "names no module for its task; pick module=classifier or module=regressor"
                ]
            )
        composed.cfg.module._target_ = datamodule.module_target
    outputs = getattr(datamodule, "num_outputs", 1)  # one logit or value by default
    sizes = {"in_features": datamodule.num_features, "out_features": outputs}
    net = build_node(composed, "model", **sizes, **_channels(composed, datamodule))
    kwargs = datamodule.module_kwargs() if hasattr(datamodule, "module_kwargs") else {}
    optimizer, scheduler, options = optimizer_factories(composed)
    factories = {"optimizer": optimizer, "scheduler": scheduler, "scheduler_options": options}
    module = build_node(composed, "module", net=net, **factories, **kwargs)
    if module.task != datamodule.task:
        raise ConfigError(
            [
                f"module ({composed.source('module')}): {type(module).__name__} is for "
                f"{module.task} tasks, but {type(datamodule).__name__} is {datamodule.task}"
            ]
        )
    return module


def _channels(composed: SourcedConfig, datamodule: TensorDataModule) -> dict[str, int]:
    """The data's `in_channels` (images) for a network that takes them, unless configured."""
    channels = getattr(datamodule, "in_channels", None)
    node = composed.cfg.model
    if channels is None or "in_channels" in node:
        return {}
    takes = signature(str(node._target_))
    return {"in_channels": channels} if "in_channels" in takes.params else {}


def build_trainer(
    composed: SourcedConfig,
    run_dir: Path,
    fold: int | None = None,
    extra: Sequence[L.Callback] = (),
    steps_per_epoch: int = 1,
    signals: SignalStop | None = None,
) -> L.Trainer:
    """The Trainer with its loggers and callbacks, all writing inside `run_dir`; atomic
    checkpoints that carry the config and random state. A null log_every_n_steps is set
    (and stored) to what the run's length calls for."""
    cfg = composed.cfg
    trainer = cfg.trainer
    if trainer.get("log_every_n_steps") is None and not trainer.get("fast_dev_run"):
        epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps")
        trainer.log_every_n_steps = log_interval(epochs, steps, steps_per_epoch)
    loggers = build_loggers(composed, run_dir)
    callbacks = _callbacks(composed, run_dir, has_logger=bool(loggers))
    # Without one of these callbacks, Lightning would add its own default one.
    defaults = {"enable_checkpointing": ModelCheckpoint, "enable_progress_bar": ProgressBar}
    injected = {
        flag: any(isinstance(c, kind) for c in callbacks)
        for flag, kind in defaults.items()
        if flag not in cfg.trainer
    }
    callbacks += [
        *extra,  # the caller's own (a search trial's pruning callback)
        StoreConfig(OmegaConf.to_container(cfg, resolve=True), composed.choices, fold),
        RandomState(),
        DivergenceCheck(),  # before SignalStop: a stop's save checks the step's loss
        signals or SignalStop(),
    ]
    # no auto-requeue, which saves mid-step: SignalStop takes SIGUSR1 (resuming.py)
    cluster = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
    return build_node(
        composed,
        "trainer",
        logger=loggers or False,
        callbacks=callbacks,
        default_root_dir=run_dir,
        plugins=[AtomicCheckpointIO(), *cluster],
        **injected,
    )


def log_interval(max_epochs: int | None, max_steps: int | None, steps_per_epoch: int) -> int:
    """Steps between logged points: LOG_EVERY, or fewer for POINTS points in a shorter run
    (max_epochs epochs, or max_steps steps if that comes first)."""
    lengths = [max_steps or -1, (max_epochs or -1) * steps_per_epoch]
    steps = min((n for n in lengths if n > 0), default=None)
    return LOG_EVERY if steps is None else max(1, min(LOG_EVERY, steps // POINTS))


def build_loggers(composed: SourcedConfig, run_dir: Path) -> list[Logger]:
    """The configured loggers (`logger=[tensorboard,csv]`: several), each told the run's
    folder and name in its own words. The name is the folder under runs_dir
    (`circles/2026-01-01_12-00-00`): a tracking store shows every folder's runs together."""
    runs_dir, here = Path(composed.cfg.runs_dir).expanduser().absolute(), run_dir.absolute()
    name = str(here.relative_to(runs_dir) if here.is_relative_to(runs_dir) else here)
    return [
        build_node(composed, path, **run_arguments(locate(node._target_), run_dir, name))
        for path, node in target_nodes(composed)[0].items()
        if path == "logger" or path.startswith("logger.")  # a stored config's single node
    ]


def _callbacks(composed: SourcedConfig, run_dir: Path, has_logger: bool) -> list[L.Callback]:
    """The configured callbacks (null: off), checkpoints in <run_dir>/checkpoints; no
    lr_monitor without a logger (Lightning would refuse to start)."""
    callbacks = []
    for name, node in (composed.cfg.callbacks or {}).items():
        if not node:
            continue
        path = f"callbacks.{name}"
        takes_dir = "dirpath" in signature(node._target_).params
        injected = {"dirpath": run_dir / "checkpoints"} if takes_dir else {}
        callbacks.append(build_node(composed, path, **injected))
    return [c for c in callbacks if has_logger or not isinstance(c, LearningRateMonitor)]
