"""What a run shows in TensorBoard beyond Lightning's scalars: its config, hyperparameters
next to the metrics they are ranked by, and pictures of the data and of what the
network learned (also saved as PNG in the run's plots/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from sklearn.metrics import confusion_matrix
from torch.utils.tensorboard.summary import hparams
from typing_extensions import override

from litlab import figures
from litlab.optim import planned_rates


def writer(trainer: L.Trainer) -> Any | None:
    """TensorBoard's SummaryWriter on rank 0, or None (another logger, or another rank)."""
    logger = trainer.logger
    if not isinstance(logger, TensorBoardLogger) or not trainer.is_global_zero:
        return None
    return logger.experiment


def add_figure(tb: Any, tag: str, figure: Figure, step: int, png: Path | None = None) -> None:
    """Render `figure` once; add it to TensorBoard and, given `png`, save it there too.
    (SummaryWriter.add_figure and savefig render it each, and the former imports pyplot.)"""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    tb.add_image(tag, rgba[..., :3], step, dataformats="HWC")
    if png is not None:
        Image.fromarray(rgba).save(png)


def log_start(trainer: L.Trainer, cfg: DictConfig, datamodule: L.LightningDataModule) -> None:
    """Before training: the resolved config as text, the planned learning-rate schedule
    (to check a schedule before spending time on it) and, for points, the data."""
    tb = writer(trainer)
    if tb is None:
        return
    tb.add_text("config", "    " + OmegaConf.to_yaml(cfg).replace("\n", "\n    "))
    interval = cfg.scheduler.interval if cfg.scheduler else "epoch"
    steps_per_epoch = 1 if interval == "epoch" else len(datamodule.train_dataloader())
    optimizer = OmegaConf.to_container(cfg.optimizer)
    scheduler = OmegaConf.to_container(cfg.scheduler) if cfg.scheduler else None
    epochs = cfg.trainer.get("max_epochs") or 0  # None or -1: no planned end to draw
    if epochs > 0:
        rates = planned_rates(optimizer, scheduler, epochs * steps_per_epoch)
        add_figure(tb, "schedule/learning_rate", figures.learning_rate(rates, interval), 0)
    if datamodule.task == "binary" and datamodule.num_features == 2:
        x, y = (t.cpu().numpy() for t in datamodule.train)
        add_figure(tb, "data/train", figures.data_scatter(x, y.ravel()), 0)


def log_hparams(trainer: L.Trainer, cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """Once, at the end: the run's choices with the final metrics they are ranked by
    (the HPARAMS tab reads the metrics' values from the scalars already logged)."""
    tb = writer(trainer)
    if tb is None:
        return
    choices = {
        k: v
        for k, v in flatten(OmegaConf.to_container(cfg)).items()
        if not k.startswith(("callbacks.", "logger."))
    }
    ranked = {
        k: v
        for k, v in metrics.items()
        if k.startswith(("test/", "baseline/")) and isinstance(v, float)
    }
    # Written into this run (SummaryWriter.add_hparams would make a new run of its own),
    # through the writer the SummaryWriter reopens after Lightning closed it, as Lightning's
    # own log_hyperparams does.
    for summary in hparams(choices, ranked):
        tb._get_file_writer().add_summary(summary)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested config as `a.b` keys with values TensorBoard can show (lists and null as text)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value if isinstance(value, bool | int | float | str) else str(value)
    return flat


class Dashboard(L.Callback):
    """Pictures of what the network learned.

    Points (circles): the decision boundary every `every_n_epochs` epochs, so the
    TensorBoard slider shows it forming. Regression: predicted against actual and the
    residuals on the test set. Both: the loss curves. The final pictures are also saved
    in `<run>/plots/`.

    A figure takes 50-100 ms to render, a step of the lesson 0.4 ms: during training the
    callback only keeps the network's probabilities over the plane (one forward pass),
    and draws every picture once testing is done.
    """

    def __init__(self, every_n_epochs: int = 100):
        self.every_n_epochs = every_n_epochs
        self.snapshots: list[tuple[int, np.ndarray]] = []  # (step, P(class 1) over the plane)
        self.losses: dict[str, list[tuple[int, float]]] = {"train/loss": [], "val/loss": []}

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 and _has_plane(trainer):
            x = trainer.datamodule.train[0].cpu().numpy()
            self.snapshots.append((trainer.global_step, _proba(pl_module)(figures.plane(x))))

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        for name in self.losses:
            value = trainer.callback_metrics.get(name)
            if value is not None:
                self.losses[name].append((trainer.global_step, value.item()))

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tb = writer(trainer)
        if tb is None:
            return
        if _has_plane(trainer):
            x, y = (t.cpu().numpy() for t in trainer.datamodule.train)
            for step, p in self.snapshots:
                figure = figures.decision_boundary(lambda _, p=p: p, x, y.ravel())
                add_figure(tb, "pictures/boundary", figure, step)
            final = {"boundary": figures.decision_boundary(_proba(pl_module), x, y.ravel())}
        elif trainer.datamodule.task == "multiclass":
            final = _image_pictures(trainer, pl_module)
        elif trainer.datamodule.task == "regression":
            actual, predicted = _test_predictions(trainer, pl_module)
            final = {
                "predicted_vs_actual": figures.predicted_vs_actual(actual, predicted),
                "residuals": figures.residuals(actual, predicted),
            }
        else:
            final = {}
        final["loss"] = figures.loss_curves({k: v for k, v in self.losses.items() if v})
        plots = Path(trainer.default_root_dir) / "plots"
        plots.mkdir(exist_ok=True)
        for name, figure in final.items():
            add_figure(tb, f"final/{name}", figure, trainer.global_step, plots / f"{name}.png")


def _has_plane(trainer: L.Trainer) -> bool:
    datamodule = trainer.datamodule
    return (
        writer(trainer) is not None and datamodule.task == "binary" and datamodule.num_features == 2
    )


def _proba(pl_module: L.LightningModule) -> Callable[[np.ndarray], np.ndarray]:
    """The module's P(class 1) for an (M, 2) array of points."""

    def proba(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = torch.from_numpy(points).to(pl_module.device)
            return pl_module.predict_proba(inputs).cpu().numpy().ravel()

    return proba


def _image_pictures(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Figure]:
    """Test images with predicted and true labels, the confusion matrix and, for a
    convolutional network, its first-layer filters."""
    x, y = trainer.datamodule.test
    with torch.no_grad():
        predicted = pl_module.predict(x.to(pl_module.device)).cpu().numpy()
    actual = y.cpu().numpy()
    classes = trainer.datamodule.num_outputs
    shown = np.argsort(predicted == actual, kind="stable")[:32]  # the mistakes first
    pictures = {
        "test_images": figures.image_grid(
            x[shown, 0].cpu().numpy(), predicted[shown], actual[shown]
        ),
        "confusion_matrix": figures.confusion(
            confusion_matrix(actual, predicted, labels=range(classes))
        ),
    }
    convolutions = [m for m in pl_module.modules() if isinstance(m, torch.nn.Conv2d)]
    if convolutions:
        pictures["filters"] = figures.filters(convolutions[0].weight.detach().cpu().numpy())
    return pictures


def _test_predictions(
    trainer: L.Trainer, pl_module: L.LightningModule
) -> tuple[np.ndarray, np.ndarray]:
    x, y = trainer.datamodule.test
    with torch.no_grad():
        predicted = pl_module.predict(x.to(pl_module.device)).cpu().numpy().ravel()
    return trainer.datamodule.unscale(y.cpu().numpy().ravel()), predicted
