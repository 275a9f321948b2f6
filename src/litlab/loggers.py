"""What each Lightning logger is told of the run, and how each takes a picture and a
text. Lightning's Logger interface has scalars and hyperparameters (`log_metrics`,
`log_hyperparams`), which litlab calls on any logger; it names the run's folder and has
no method for an image, so this is the one place that knows each logger's own words
for them (tests/test_loggers.py reads each back from what the logger wrote)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)
from torch.utils.tensorboard.summary import hparams

PICTURED = (TensorBoardLogger, MLFlowLogger, WandbLogger)  # the loggers that take images


def run_arguments(logger_class: type, run_dir: Path, run_name: str) -> dict[str, Any]:
    """Where the run's folder is and what the run is called, in the words of a logger of
    `logger_class` (TensorBoard's `name` is a folder, W&B's a title); another logger
    class gets `save_dir` if it takes one."""
    if issubclass(logger_class, TensorBoardLogger):  # the events straight into the folder
        return {"save_dir": run_dir, "name": "", "version": ""}
    if issubclass(logger_class, CSVLogger):
        # csv/version_<n>/: Lightning's CSV logger deletes a metrics.csv in its folder, so
        # a resumed run takes the next version rather than the first one's file
        return {"save_dir": run_dir, "name": "csv"}
    if issubclass(logger_class, MLFlowLogger):  # save_dir: a file store for tracking_uri=null
        return {"run_name": run_name, "save_dir": str(run_dir / "mlruns")}
    if issubclass(logger_class, WandbLogger):  # its files in <run>/wandb/
        return {"save_dir": run_dir, "name": run_name}
    takes = inspect.signature(logger_class).parameters
    return {"save_dir": run_dir} if "save_dir" in takes else {}


def takes_images(logger: Logger) -> bool:
    return isinstance(logger, PICTURED)


def log_image(logger: Logger, tag: str, image: np.ndarray, step: int) -> None:
    """`image` (H, W, 3 bytes) as `tag` at `step`; nothing for a logger without images."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(tag, image, step, dataformats="HWC")
    elif isinstance(logger, MLFlowLogger):
        # an artifact file by tag and step; MLflow 3.17's UI showed no picture in its
        # image charts (log_image with key= and step=), but shows these in Artifacts
        path = f"{tag}/step_{step:06d}.png"  # zero-padded: the Artifacts tab sorts by name
        logger.experiment.log_image(logger.run_id, image, artifact_file=path)
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=tag, images=[image], step=step)


def log_config(logger: Logger, text: str) -> None:
    """The resolved config (YAML) as text: TensorBoard's TEXT tab, an MLflow artifact.
    (W&B keeps the hyperparameters as its run's config.)"""
    if isinstance(logger, TensorBoardLogger):  # indented: markdown shows it as code
        logger.experiment.add_text("config", "    " + text.replace("\n", "\n    "))
    elif isinstance(logger, MLFlowLogger):
        logger.experiment.log_text(logger.run_id, text, "config.yaml")


def log_ranked(logger: Logger, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """`params` beside the final `metrics` they rank, where the logger has such a view
    (TensorBoard's HPARAMS); as hyperparameters elsewhere. TensorBoardLogger's own
    `log_hyperparams(metrics=...)` logs the metrics again as scalars, and the test metrics
    are logged already at this step, so their HPARAMS summary goes straight into the
    run's events file. SummaryWriter's file writer is torch's private method (the one
    Lightning uses there too): it reopens the writer Lightning closed at the end of fit."""
    if not isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(params)
        return
    writer = logger.experiment._get_file_writer()
    for summary in hparams(params, metrics):
        writer.add_summary(summary)


def finish(logger: Logger) -> None:
    """Close the logger's run for good. Lightning's finalize leaves a W&B run open, and
    the next run in the process (a cross-validation's next fold) would log into it."""
    logger.finalize("success")
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()
