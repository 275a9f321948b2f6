"""Each logger's own words for the run's folder and name, a picture and a text: Lightning's
Logger has scalars and hyperparameters, not these (tests/test_loggers.py reads each back)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.logger import Logger
from torch.utils.tensorboard.summary import hparams

PICTURED = (TensorBoardLogger, MLFlowLogger, WandbLogger)  # the loggers that take images


def run_arguments(logger_class: type, run_dir: Path, run_name: str) -> dict[str, Any]:
    """The run's folder and name in the words of `logger_class` (TensorBoard's `name` is a
    folder, W&B's a title); another class gets `save_dir` if it takes one."""
    if issubclass(logger_class, TensorBoardLogger):  # the events straight into the folder
        return {"save_dir": run_dir, "name": "", "version": ""}
    if issubclass(logger_class, CSVLogger):  # it deletes a metrics.csv in its folder, so
        return {"save_dir": run_dir, "name": "csv"}  # a resumed run takes csv/version_<n+1>
    if issubclass(logger_class, MLFlowLogger):  # save_dir: a file store for tracking_uri=null
        return {"run_name": run_name, "save_dir": str(run_dir / "mlruns")}
    if issubclass(logger_class, WandbLogger):  # its files in <run>/wandb/
        return {"save_dir": run_dir, "name": run_name}
    takes = inspect.signature(logger_class).parameters
    return {"save_dir": run_dir} if "save_dir" in takes else {}


def log_image(logger: Logger, tag: str, image: np.ndarray, step: int) -> None:
    """`image` (H, W, 3 bytes) as `tag` at `step`; nothing for a logger without images."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(tag, image, step, dataformats="HWC")
    elif isinstance(logger, MLFlowLogger):  # MLflow's image charts showed none: artifacts,
        path = f"{tag}/step_{step:06d}.png"  # zero-padded as the Artifacts tab sorts by name
        logger.experiment.log_image(logger.run_id, image, artifact_file=path)
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=tag, images=[image], step=step)


def log_config(logger: Logger, text: str) -> None:
    """The resolved config (YAML): TensorBoard's TEXT tab, an MLflow artifact."""
    if isinstance(logger, TensorBoardLogger):  # indented: markdown shows it as code
        logger.experiment.add_text("config", "    " + text.replace("\n", "\n    "))
    elif isinstance(logger, MLFlowLogger):
        logger.experiment.log_text(logger.run_id, text, "config.yaml")


def log_ranked(logger: Logger, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """`params` beside the final `metrics` they rank (TensorBoard's HPARAMS; its logger's
    log_hyperparams would log the metrics twice), elsewhere as hyperparameters."""
    if not isinstance(logger, TensorBoardLogger):
        return logger.log_hyperparams(params)
    writer = logger.experiment._get_file_writer()  # private, as in Lightning: reopens it
    for summary in hparams(params, metrics):
        writer.add_summary(summary)


def finish(logger: Logger) -> None:
    """Close the logger's run for good: Lightning's finalize leaves a W&B run open, and the
    next run in the process (a cross-validation's next fold) would log into it."""
    logger.finalize("success")
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()
