"""Callbacks of our own, for what Lightning's do per batch and these jobs need per run."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm
from typing_extensions import override

KEY = "litlab"  # where StoreConfig puts the config in a checkpoint


class StoreConfig(L.Callback):
    """Puts the run's resolved config (and its fold) into every checkpoint, as plain data,
    so that eval and predict need nothing but the checkpoint."""

    def __init__(self, config: dict[str, Any], choices: dict[str, Any], fold: int | None):
        self.stored = {"config": config, "choices": choices, "fold": fold}

    @override
    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[KEY] = self.stored


class RandomState(L.Callback):
    """Saves torch's random number generators in checkpoints and restores them on resume,
    so a resumed run draws what the uninterrupted one would have (dropout, augmentation).
    The data order needs no state: it is a function of the seed and the epoch."""

    @override
    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class EpochProgressBar(ProgressBar):
    """One bar over the whole run, counted in epochs and redrawn every `refresh_rate`.

    Lightning's bars restart every epoch; on 1000 one-step epochs that is 1000 redraws,
    which cost more than the steps (and fill a log file with lines).
    """

    def __init__(self, refresh_rate: int = 50):
        super().__init__()
        self.refresh_rate, self.enabled = refresh_rate, True
        self.bar: tqdm | None = None

    @override
    def disable(self) -> None:
        self.enabled = False

    @override
    def enable(self) -> None:
        self.enabled = True

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled:
            total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            self.bar = tqdm(
                total=total, initial=trainer.current_epoch, unit="epoch", dynamic_ncols=True
            )

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if self.bar is not None and (done % self.refresh_rate == 0 or done == self.bar.total):
            loss = trainer.callback_metrics.get("train/loss")
            if loss is not None:
                self.bar.set_postfix_str(f"train/loss={loss.item():.4f}", refresh=False)
            self.bar.update(done - self.bar.n)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @override
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.on_train_end(trainer, pl_module)
