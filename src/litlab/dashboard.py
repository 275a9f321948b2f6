"""What a run shows beyond Lightning's scalars: its config, hyperparameters, pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import Logger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from PIL import Image
from torch import Tensor
from typing_extensions import override

from litlab import figures, loggers
from litlab.checkpoints import write_atomically
from litlab.config import SourcedConfig
from litlab.data.base import TensorDataModule
from litlab.module import Snapshot
from litlab.optim import optimizer_factories, planned_rates
from litlab.rundirs import subfolder
from litlab.signatures import Positive

Params = dict[str, bool | int | float | str]


def pictured(trainer: L.Trainer) -> list[Logger]:
    """The loggers that take images, on rank 0 (none on the other ranks)."""
    if not trainer.is_global_zero:
        return []
    return [logger for logger in trainer.loggers if isinstance(logger, loggers.PICTURED)]


def add_figure(
    to: list[Logger], tag: str, figure: Figure, step: int, png: Path | None = None
) -> None:
    """Render `figure` once, for the loggers `to` and, given `png`, that file."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    for logger in to:
        loggers.log_image(logger, tag, np.ascontiguousarray(rgba[..., :3]), step)
    if png is not None:
        write_atomically(png, lambda file: Image.fromarray(rgba).save(file, format="PNG"))


def log_start(trainer: L.Trainer, composed: SourcedConfig, datamodule: TensorDataModule) -> None:
    """Before training: the run's choices, its config as text, the planned rate, the data."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        logger.log_hyperparams(hyperparameters(composed))  # MLflow's params, W&B's config
        loggers.log_config(logger, OmegaConf.to_yaml(composed.cfg))
    to = pictured(trainer)
    for tag, figure in (start_figures(composed, datamodule) if to else {}).items():
        add_figure(to, tag, figure, 0)


def start_figures(composed: SourcedConfig, datamodule: TensorDataModule) -> dict[str, Figure]:
    """The planned learning rate (if the run has a planned end) and the data's pictures."""
    optimizer, scheduler, options = optimizer_factories(composed)
    interval = options.get("interval", "epoch")
    epochs = composed.cfg.trainer.get("max_epochs") or 0  # None or -1: no planned end
    found = {}
    if epochs > 0:
        steps = epochs * (1 if interval == "epoch" else len(datamodule.train_dataloader()))
        rates = planned_rates(optimizer, scheduler, steps)
        found["schedule/learning_rate"] = figures.learning_rate(rates, interval)
    pictures = getattr(datamodule, "figures", dict)()  # a data module's own, if it has them
    return found | {f"data/{name}": figure for name, figure in pictures.items()}


def log_hparams(trainer: L.Trainer, composed: SourcedConfig, metrics: dict[str, Any]) -> None:
    """At the end: the choices and baselines (one point each: no scalars) by the test metrics."""
    if not trainer.is_global_zero:
        return
    ranked = {k: v for k, v in metrics.items() if k.startswith("test/") and isinstance(v, float)}
    baselines = {k: v for k, v in metrics.items() if k.startswith("baseline/")}
    for logger in trainer.loggers:
        loggers.log_ranked(logger, hyperparameters(composed) | baselines, ranked)


def hyperparameters(composed: SourcedConfig) -> Params:
    """What tells runs apart: each group's option (`choice/optimizer: momentum`), the seed,
    the length, the tags and the keys of what is trained (not trainer, callbacks, logger)."""
    cfg = OmegaConf.to_container(composed.cfg)
    values = {f"choice/{g}": str(o) for g, o in composed.choices.items() if g != "debug"}
    values |= {"seed": cfg["seed"], "trainer.max_epochs": str(cfg["trainer"].get("max_epochs"))}
    values["tags"] = ",".join(map(str, cfg.get("tags") or []))
    trained = ("data", "model", "module", "optimizer", "scheduler")
    trained = flatten({g: cfg[g] for g in trained if isinstance(cfg.get(g), dict)})
    return values | {k: v for k, v in trained.items() if not k.endswith("_partial_")}


def flatten(tree: dict[str, Any], prefix: str = "") -> Params:
    """Nested config as `a.b` keys with values TensorBoard can show (lists and null as text)."""
    flat: Params = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = (
                value if isinstance(value, bool | int | float | str) else str(value)
            )
    return flat


class Dashboard(L.Callback):
    """Pictures of what the network learned (the module's `final_figures`, and its
    `snapshot` every `every_n_epochs` epochs for TensorBoard's slider) and the loss curves,
    all drawn once testing is done: a figure renders as slowly as 100 of the lesson's steps.

    The loss curve has every step's loss (rank 0's), kept on the device (`.item()` would
    wait for it) and saved in each checkpoint, so a resumed run's curve starts at step 1.
    """

    CHUNK = 1024  # the losses joined into one tensor every CHUNK steps

    def __init__(self, every_n_epochs: Positive | None = 100):  # None: no snapshots
        self.every_n_epochs = every_n_epochs
        self.snapshots: list[tuple[int, Snapshot]] = []
        self.val: list[tuple[int, float]] = []  # (step, val/loss)
        self.first_step: int | None = None
        self.train: list[Tensor] = []  # each step's loss, or the steps so far joined

    @override
    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, *_: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, Tensor):
            return
        if self.first_step is None:
            self.first_step = trainer.global_step  # counted after this step's update
        self.train.append(loss.detach().reshape(1))
        if len(self.train) > self.CHUNK:
            self.train = [self._joined()]

    def _joined(self) -> Tensor:
        """Every step's loss so far, joined where the last is (a resumed run's are on the CPU)."""
        device = self.train[-1].device if self.train else "cpu"
        return torch.cat([torch.empty(0, device=device), *(t.to(device) for t in self.train)])

    def training_curve(self) -> list[tuple[int, float]]:
        """(step, loss) of every training step, copied from the device once."""
        return list(enumerate(self._joined().cpu().tolist(), start=self.first_step or 1))

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"first_step": self.first_step, "train": self._joined().cpu(), "val/loss": self.val}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first_step, self.train = state_dict["first_step"], [state_dict["train"]]
        self.val = [tuple(point) for point in state_dict["val/loss"]]

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        every = self.every_n_epochs
        if every and (trainer.current_epoch + 1) % every == 0 and pictured(trainer):
            snapshot = pl_module.snapshot(trainer.datamodule)
            if snapshot is not None:
                self.snapshots.append((trainer.global_step, snapshot))

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/loss")
        if value is not None and not trainer.sanity_checking:
            self.val.append((trainer.global_step, value.item()))

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        to = pictured(trainer)
        for step, (name, draw) in self.snapshots:
            add_figure(to, f"pictures/{name}", draw(), step)
        final = pl_module.final_figures(trainer.datamodule)
        curves = {"train/loss": self.training_curve(), "val/loss": self.val}
        final["loss"] = figures.loss_curves({k: v for k, v in curves.items() if v})
        plots = subfolder(Path(trainer.default_root_dir), "plots")
        for name, figure in final.items():
            add_figure(to, f"final/{name}", figure, trainer.global_step, plots / f"{name}.png")
