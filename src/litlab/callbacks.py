"""Callbacks of our own, for what Lightning's do per batch and these jobs need per run."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm
from typing_extensions import override

from litlab.checkpoints import KEY
from litlab.errors import Interrupted, Stopped
from litlab.lightning_internals import claim_last_checkpoint
from litlab.signatures import Positive


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
    The data order is a function of the seed and the epoch (TensorBatches saves how far
    into the epoch the run got)."""

    @override
    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class GracefulStop(L.Callback):
    """On SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice) during training: finish the
    optimiser step, save it to `checkpoint` in `run_dir` and stop with `Interrupted`,
    which the run reports. A second Ctrl-C is not caught: it stops at once, saving
    nothing more; a second SIGTERM changes nothing.

    Why our own: Lightning's SIGTERM handling saves nothing and exits with status 0, and
    it has no SIGINT handling but its KeyboardInterrupt path, which stops mid-step. The
    stop must come after a whole optimiser step, saved with the loops' state, so that a
    resumed run ends with the weights of an uninterrupted one (tests/fault checks it at
    nine points of the loop).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, run_dir: Path):
        self.run_dir, self.checkpoint = run_dir, run_dir / "checkpoints" / "last.ckpt"
        self.received: signal.Signals | None = None
        self.previous: dict[signal.Signals, Any] = {}
        self.validated, self.saved_step = False, -1

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received = None
        if threading.current_thread() is threading.main_thread():  # where Python allows it
            self.previous = {s: signal.signal(s, self._receive) for s in self.SIGNALS}
        if self._signalled(trainer):  # a SIGTERM that came while the run was set up
            self._stop(trainer)

    def _receive(self, signum: int, _frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum)
        if signal.SIGINT in self.previous:  # a second Ctrl-C: Python's KeyboardInterrupt
            signal.signal(signal.SIGINT, self.previous.pop(signal.SIGINT))

    def _restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    @override
    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # The epoch's last step stops at the epoch's end, after the validation due there;
        # a batch whose gradients are still being accumulated is not a step.
        last = batch_idx + 1 == trainer.num_training_batches
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        if stepped and not last and self._signalled(trainer):
            self._stop(trainer)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the epoch's validation, whose checkpoint callbacks have saved best.ckpt
        if self._signalled(trainer):
            self._stop(trainer)
        if self.validated:
            self._save_last(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signalled = self._signalled(trainer)  # after the last epoch's end: before the test
        self._restore()
        if signalled:
            self._stop(trainer)
        self._save_last(trainer)  # a finished run's last.ckpt is its final state

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validated = not trainer.sanity_checking

    def _save_last(self, trainer: L.Trainer) -> None:
        """Save last.ckpt (when a checkpoint callback keeps one) unless it holds this step.
        Lightning 2.6's `save_last` writes it only beside a new best checkpoint, so a run
        resumed from it would retrain the epochs since."""
        self.validated = False
        # Decided alike on every rank (save_checkpoint is collective under DDP): another
        # machine's ranks name the run folder differently and cannot match its path.
        keeps_last = any(callback.save_last for callback in trainer.checkpoint_callbacks)
        if self.saved_step != trainer.global_step and keeps_last:
            self._claim_last(trainer)
            trainer.save_checkpoint(self.checkpoint, weights_only=False)
            self.saved_step = trainer.global_step

    @override
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def _signalled(self, trainer: L.Trainer) -> bool:
        """Whether a signal came (Lightning notes SIGTERM before our handler is in place);
        under DDP, whether it came to any rank, so that all stop after the same step."""
        signalled = self.received is not None or trainer.received_sigterm
        if trainer.world_size > 1:
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        return signalled

    def _stop(self, trainer: L.Trainer) -> NoReturn:
        received = self.received or signal.SIGTERM  # Lightning's flag, or another rank's
        self._claim_last(trainer)
        trainer.save_checkpoint(self.checkpoint, weights_only=False)  # all, to resume
        raise Interrupted(received.name, 128 + received, trainer.global_step, str(self.run_dir))

    def _claim_last(self, trainer: L.Trainer) -> None:
        """Tell the checkpoint callback that writes last.ckpt that this one is its own (it
        is saved with the callback's state), so the resumed run overwrites it, rather than
        keeping it and starting last-v1.ckpt."""
        for callback in trainer.checkpoint_callbacks:
            name = callback.format_checkpoint_name({}, callback.CHECKPOINT_NAME_LAST)
            if callback.save_last and Path(name).resolve() == self.checkpoint.resolve():
                claim_last_checkpoint(callback, Path(name))


class StopOnSignal:
    """From the claim of a run folder to its metrics.json, SIGINT and SIGTERM raise
    `Stopped` (outside the training loop, where GracefulStop takes them): a run stopped
    while it is set up, fits its baselines or tests still writes its status. Inside
    `held()` (claiming the folder, writing a status) the signal waits for the block's end.

    Without it SIGTERM kills the process with no word and SIGINT prints a traceback, and
    the run folder keeps no status."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self.holding = False
        self.previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # where Python allows it
            self.previous = {s: signal.signal(s, self._receive) for s in GracefulStop.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _receive(self, signum: int, _frame: FrameType | None) -> None:
        if self.holding:
            self.pending = self.pending or signum
        else:
            raise Stopped(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Signals wait during the block; `raise_pending` raises one that came."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def raise_pending(self) -> None:
        if self.pending:
            raise Stopped(self.pending)


class EpochProgressBar(ProgressBar):
    """One bar over the whole run, counted in epochs and redrawn every `refresh_rate`.

    Lightning's bars restart every epoch; on 1000 one-step epochs that is 1000 redraws,
    which cost more than the steps (and fill a log file with lines).
    """

    def __init__(self, refresh_rate: Positive = 50):
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
            total = _planned_epochs(trainer)
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


def _planned_epochs(trainer: L.Trainer) -> int | None:
    """The epochs the run will take: max_epochs, or fewer when max_steps comes first;
    None when neither bounds it."""
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    if trainer.max_steps > 0 and trainer.num_training_batches not in (0, float("inf")):
        steps_per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        by_steps = math.ceil(trainer.max_steps / steps_per_epoch)
        epochs = min(epochs, by_steps) if epochs else by_steps
    return epochs
