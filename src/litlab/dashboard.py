"""What a run shows in its loggers beyond Lightning's scalars: its config,
hyperparameters next to the metrics they are ranked by, and pictures of the data and of
what the network learned (the final ones also saved as PNG in the run's plots/, with or
without a logger). Each logger takes them in its own way (loggers.py)."""

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


def pictured(trainer: L.Trainer) -> list[Logger]:
    """The loggers that take images, on rank 0 (none on the other ranks)."""
    if not trainer.is_global_zero:
        return []
    return [logger for logger in trainer.loggers if loggers.takes_images(logger)]


def add_figure(
    to: list[Logger], tag: str, figure: Figure, step: int, png: Path | None = None
) -> None:
    """Render `figure` once; send it to the loggers `to` and, given `png`, save it there.
    (Each logger's own figure call and savefig would render it each, and some import pyplot.)"""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    for logger in to:
        loggers.log_image(logger, tag, np.ascontiguousarray(rgba[..., :3]), step)
    if png is not None:
        write_atomically(png, lambda file: Image.fromarray(rgba).save(file, format="PNG"))


def log_start(trainer: L.Trainer, composed: SourcedConfig, datamodule: TensorDataModule) -> None:
    """Before training: the run's choices and the resolved config as text, the planned
    learning-rate schedule (to check a schedule before spending time on it) and the
    data's own pictures."""
    if not trainer.is_global_zero:
        return
    cfg, to = composed.cfg, pictured(trainer)
    for logger in trainer.loggers:
        logger.log_hyperparams(hyperparameters(composed))  # MLflow's params, W&B's config
        loggers.log_config(logger, OmegaConf.to_yaml(cfg))
    if not to:
        return
    for tag, figure in start_figures(composed, datamodule).items():
        add_figure(to, tag, figure, 0)


def start_figures(composed: SourcedConfig, datamodule: TensorDataModule) -> dict[str, Figure]:
    """The pictures drawn before training, by tag: the planned learning rate (when the
    run has a planned end) and the data module's own (`data/<name>`)."""
    optimizer, scheduler, options = optimizer_factories(composed)
    interval = options.get("interval", "epoch")
    steps_per_epoch = 1 if interval == "epoch" else len(datamodule.train_dataloader())
    epochs = composed.cfg.trainer.get("max_epochs") or 0  # None or -1: no planned end to draw
    found = {}
    if epochs > 0:
        rates = planned_rates(optimizer, scheduler, epochs * steps_per_epoch)
        found["schedule/learning_rate"] = figures.learning_rate(rates, interval)
    pictures = datamodule.figures() if hasattr(datamodule, "figures") else {}
    return found | {f"data/{name}": figure for name, figure in pictures.items()}


def log_hparams(trainer: L.Trainer, composed: SourcedConfig, metrics: dict[str, Any]) -> None:
    """Once, at the end: the run's choices and the baselines' scores, with the final
    metrics they are ranked by where the logger takes them (TensorBoard's HPARAMS tab).
    The baselines are hyperparameters, not scalars: one point each, they would open the
    SCALARS tab on charts with nothing to see."""
    if not trainer.is_global_zero:
        return
    ranked = {k: v for k, v in metrics.items() if k.startswith("test/") and isinstance(v, float)}
    baselines = {k: v for k, v in metrics.items() if k.startswith("baseline/")}
    for logger in trainer.loggers:
        loggers.log_ranked(logger, hyperparameters(composed) | baselines, ranked)


def hyperparameters(composed: SourcedConfig) -> dict[str, bool | int | float | str]:
    """What tells runs apart: the option of each group (`choice/optimizer: momentum`,
    where optimizer._target_ would only say SGD), the seed, the run's length, and the keys
    of what is trained (data, model, module, optimizer, scheduler). The machinery
    (trainer, callbacks, logger, folders) would only add columns that never change."""
    shown = ("data", "model", "module", "optimizer", "scheduler")
    cfg = OmegaConf.to_container(composed.cfg)
    values = {f"choice/{g}": str(o) for g, o in composed.choices.items() if g not in ("debug",)}
    values |= {"seed": cfg["seed"], "trainer.max_epochs": str(cfg["trainer"].get("max_epochs"))}
    values |= {"tags": ",".join(map(str, cfg.get("tags") or []))}
    trained = {group: cfg[group] for group in shown if isinstance(cfg.get(group), dict)}
    return values | {k: v for k, v in flatten(trained).items() if not k.endswith("_partial_")}


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
    """Pictures of what the network learned, each task's own (the LightningModule's
    `snapshot` and `final_figures`), and the loss curves; the final ones are also saved
    in `<run>/plots/`.

    Every `every_n_epochs` epochs the module takes a snapshot (for points, its
    probabilities over the plane: one forward pass), so the TensorBoard slider shows the
    boundary forming. A figure takes 50-100 ms to render, as long as 100 steps of the
    lesson's network, so every picture is drawn once testing is done.

    The loss figure shows every training step (the lesson's 1000-epoch curve), not only
    the steps Lightning logs: each step's loss stays on the device, detached (no
    `.item()`, which would wait for the device every step), and is copied once at the end.
    Under DDP it is rank 0's loss. The curves so far go into every checkpoint, so a
    resumed run's figure starts at step 1, as the uninterrupted run's does.
    """

    CHUNK = 1024  # losses stacked into one tensor every CHUNK steps: few Python objects

    def __init__(self, every_n_epochs: Positive | None = 100):  # None: no snapshots
        self.every_n_epochs = every_n_epochs
        self.snapshots: list[tuple[int, Snapshot]] = []
        self.losses: dict[str, list[tuple[int, float]]] = {"val/loss": []}
        self.first_step: int | None = None
        self.step_losses: list[Tensor] = []  # this chunk's, one 0-d tensor a step
        self.loss_chunks: list[Tensor] = []

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, Tensor):
            return
        if self.first_step is None:
            self.first_step = trainer.global_step  # counted after this step's update
        self.step_losses.append(loss.detach())
        if len(self.step_losses) == self.CHUNK:
            self.loss_chunks.append(torch.stack(self.step_losses))
            self.step_losses = []

    def training_curve(self) -> list[tuple[int, float]]:
        """(step, loss) of every training step, copied from the device once."""
        values = self._train_losses().tolist()
        return list(enumerate(values, start=self.first_step or 1))

    def _train_losses(self) -> Tensor:
        """Every step's loss so far, on the CPU (a resumed run's first chunk is there)."""
        chunks = self.loss_chunks + ([torch.stack(self.step_losses)] if self.step_losses else [])
        return torch.cat([c.float().cpu() for c in chunks]) if chunks else torch.empty(0)

    @override
    def state_dict(self) -> dict[str, Any]:
        """The curves so far, saved in the checkpoint (a copy from the device each time
        one is written, which waits for the device anyway)."""
        return {"first_step": self.first_step, "train": self._train_losses(), **self.losses}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self.first_step, train = state.pop("first_step"), state.pop("train")
        self.loss_chunks, self.step_losses = ([train] if len(train) else []), []
        self.losses = {name: [tuple(point) for point in points] for name, points in state.items()}

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        every = self.every_n_epochs
        if every and (trainer.current_epoch + 1) % every == 0 and pictured(trainer):
            snapshot = pl_module.snapshot(trainer.datamodule)
            if snapshot is not None:
                self.snapshots.append((trainer.global_step, snapshot))

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
        if not trainer.is_global_zero:
            return
        to = pictured(trainer)
        for step, (name, draw) in self.snapshots:
            add_figure(to, f"pictures/{name}", draw(), step)
        final = pl_module.final_figures(trainer.datamodule)
        curves = {"train/loss": self.training_curve(), **self.losses}
        final["loss"] = figures.loss_curves({k: v for k, v in curves.items() if v})
        plots = subfolder(Path(trainer.default_root_dir), "plots")
        for name, figure in final.items():
            add_figure(to, f"final/{name}", figure, trainer.global_step, plots / f"{name}.png")
