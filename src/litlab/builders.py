"""Objects from a checked config: the data, the LightningModule around its network, and
the Trainer with its logger and callbacks. The recipe (train.py), eval and predict all
build through these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from omegaconf import OmegaConf

from litlab.callbacks import GracefulStop, RandomState, StoreConfig
from litlab.check import SCHEDULER_OPTIONS
from litlab.checkpoints import AtomicCheckpointIO
from litlab.config import Composed, ConfigError, instantiate
from litlab.data.base import TensorDataModule, contract_errors
from litlab.errors import DataError
from litlab.optim import OptimizerFactory, SchedulerFactory

AUTO_MODULE = "litlab.module.auto"  # configs/module/auto.yaml


def build_node(composed: Composed, path: str, **injected: Any) -> Any:
    """`instantiate` a node; an error its class raises about its arguments names the node."""
    node = OmegaConf.select(composed.cfg, path)
    try:
        return instantiate(node, **injected)
    except (ValueError, TypeError, MisconfigurationException) as exc:
        raise ConfigError([f"{path} ({composed.source(path)}, {node._target_}): {exc}"]) from None


def build_data(
    composed: Composed, fold: int | None = None, stored: dict[str, Any] | None = None
) -> TensorDataModule:
    """The data module, split and encoded now (`fold` of a cross-validation), so a table
    that cannot be used stops the run before any folder is made; given the `stored`
    state of a checkpoint's data, a table that is not that one is refused."""
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


def optimizer_factories(
    composed: Composed,
) -> tuple[OptimizerFactory, SchedulerFactory | None, dict[str, Any]]:
    """The optimiser and scheduler as partials, and the options that tell Lightning when
    to step the scheduler (interval, frequency, monitor)."""
    optimizer = build_node(composed, "optimizer")
    node = composed.cfg.get("scheduler")
    if node is None:
        return optimizer, None, {}
    options = OmegaConf.to_container(node.get(SCHEDULER_OPTIONS) or OmegaConf.create())
    schedule = OmegaConf.masked_copy(node, [k for k in node if k != SCHEDULER_OPTIONS])
    try:
        scheduler = instantiate(schedule)
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"scheduler ({composed.source('scheduler')}): {exc}"]) from None
    return optimizer, scheduler, options


def build_module(composed: Composed, datamodule: TensorDataModule) -> L.LightningModule:
    """The network, sized by the data, inside the LightningModule that trains it. With
    module=auto, the LightningModule is the one the data names for its task: the config
    (and so the checkpoint) then records that one."""
    if composed.cfg.module.get("_target_") == AUTO_MODULE:
        if datamodule.module_target is None:
            raise ConfigError(
                [
                    f"module=auto ({composed.source('module')}): {type(datamodule).__name__} "
                    "names no module for its task; pick module=classifier or module=regressor"
                ]
            )
        composed.cfg.module._target_ = datamodule.module_target
    net = build_node(
        composed,
        "model",
        in_features=datamodule.num_features,
        out_features=getattr(datamodule, "num_outputs", 1),  # one logit or value by default
    )
    kwargs = datamodule.module_kwargs() if hasattr(datamodule, "module_kwargs") else {}
    optimizer, scheduler, options = optimizer_factories(composed)
    module = build_node(
        composed,
        "module",
        net=net,
        optimizer=optimizer,
        scheduler=scheduler,
        scheduler_options=options,
        **kwargs,
    )
    if module.task != datamodule.task:
        raise ConfigError(
            [
                f"module ({composed.source('module')}): {type(module).__name__} is for "
                f"{module.task} tasks, but {type(datamodule).__name__} is {datamodule.task}"
            ]
        )
    return module


def build_trainer(
    composed: Composed,
    run_dir: Path,
    fold: int | None = None,
    extra: Sequence[L.Callback] = (),
) -> L.Trainer:
    """The Trainer with its logger and callbacks, all writing inside `run_dir`; every
    checkpoint also carries the config (for eval and predict) and the random state (for
    an exact resume), and is written atomically. A signal stops it after a saved step."""
    cfg = composed.cfg
    # name="" and version="" put the events straight into the run folder, and with them
    # Lightning's checkpoint callback picks <run_dir>/checkpoints.
    logger = (
        build_node(composed, "logger", save_dir=run_dir, name="", version="")
        if cfg.logger
        else False
    )
    callbacks = _callbacks(composed, has_logger=bool(logger))
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
        GracefulStop(run_dir),
    ]
    return build_node(
        composed,
        "trainer",
        logger=logger,
        callbacks=callbacks,
        default_root_dir=run_dir,
        plugins=[AtomicCheckpointIO(), *_cluster()],
        **injected,
    )


def _cluster() -> list[SLURMEnvironment]:
    """Under SLURM, Lightning's SLURM environment without its auto-requeue: its SIGUSR1
    handler saves from inside the signal handler, mid-step, then trains on (shown by
    tests/test_lightning_shortfalls.py), and under DDP its collectives could pair wrongly
    with GracefulStop's. GracefulStop takes SIGUSR1 like SIGTERM instead, and `train.run`
    requeues the job: one mechanism."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _callbacks(composed: Composed, has_logger: bool) -> list[L.Callback]:
    """The configured callbacks; one set to null (callbacks.lr_monitor=null) is off. With
    no logger the learning rate has nowhere to go (Lightning would refuse to start)."""
    callbacks = [
        build_node(composed, f"callbacks.{name}")
        for name, node in (composed.cfg.callbacks or {}).items()
        if node
    ]
    return [c for c in callbacks if has_logger or not isinstance(c, LearningRateMonitor)]
