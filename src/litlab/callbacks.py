"""Callbacks for what Lightning lacks: the config and every rank's random state in
checkpoints, stops after a whole step (signals, divergence), one bar over the run."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ProgressBar
from torch import Tensor
from tqdm.auto import tqdm
from typing_extensions import override

from litlab.checkpoints import CHECKPOINT_SECTION
from litlab.errors import Diverged, Interrupted, Stopped
from litlab.signatures import Positive

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class StoreConfig(L.Callback):
    """The resolved config and fold in every checkpoint, as plain data: eval and predict
    need nothing but the checkpoint."""

    def __init__(self, config: dict[str, Any], choices: dict[str, Any], fold: int | None):
        self.stored = {"config": config, "choices": choices, "fold": fold}

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, *hook: Any) -> None:
        _module, checkpoint = hook
        checkpoint[CHECKPOINT_SECTION] = self.stored


class RandomState(L.Callback):
    """Every rank's torch generators in checkpoints, each restored by its rank on resume,
    so a resumed run draws what an uninterrupted one would (Lightning keeps none)."""

    @override
    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        own = {"cpu": torch.get_rng_state(), "cuda": cuda}
        if not _distributed():
            return {"ranks": [own]}
        ranks: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, own)  # every rank saves at once
        return {"ranks": ranks}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks", [state_dict])  # older: rank 0's alone
        rank, world = (dist.get_rank(), dist.get_world_size()) if _distributed() else (0, 1)
        if rank < len(ranks):
            torch.set_rng_state(ranks[rank]["cpu"])
            _restore_cuda(ranks[rank]["cuda"])
        if rank == 0 and len(ranks) != world:
            warnings.warn(
                f"random state: saved by {len(ranks)} process(es), resumed on {world}: "
                f"restored ranks 0-{min(len(ranks), world) - 1}; random draws will differ "
                "from an uninterrupted run's",
                stacklevel=2,
            )


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _restore_cuda(states: list[Tensor]) -> None:
    """Restore the generators of the GPUs there are; say in one line which could not be."""
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device, state in enumerate(states[:here]):
        torch.cuda.set_rng_state(state, device)
    if len(states) > here:
        restored = ", ".join(f"cuda:{d}" for d in range(here)) or "none"
        warnings.warn(
            f"random state: {len(states)} CUDA generators were saved, this machine has "
            f"{here}: restored {restored}; draws on the GPU (dropout) will differ from an "
            "uninterrupted run's",
            stacklevel=3,
        )


def _logs_now(trainer: L.Trainer) -> bool:
    """Whether Lightning logs the step just taken (after the callbacks' hooks)."""
    return trainer.global_step % max(trainer.log_every_n_steps, 1) == 0


def _stepped_mid_epoch(trainer: L.Trainer, batch_idx: int) -> bool:
    """Whether this batch ended an optimiser step that is not the epoch's last (that one
    is checked at the epoch's end, after its validation)."""
    stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
    return stepped and batch_idx + 1 != trainer.num_training_batches


class DivergenceCheck(L.Callback):
    """Stops training with `Diverged` at the first step whose loss was not finite on any
    rank. The ranks agree (one all-gather) only when Lightning logs, before every
    checkpoint (none keeps the weights that followed) and at the end, so no step waits
    for the GPU. Why not EarlyStopping(check_finite=True): it checks after a validation,
    once the checkpoints may be saved, and stops without an error; detect_anomaly slows
    every backward pass."""

    def __init__(self) -> None:
        self.bad: Tensor | None = None  # (step, loss, lr) of the first bad loss; step -1: none

    @override
    def on_train_batch_end(self, trainer: L.Trainer, *hook: Any) -> None:
        _module, outputs, _batch, batch_idx = hook
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:  # None: the module skipped this batch
            stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
            step = trainer.global_step - stepped  # the step this loss was computed in
            self._note(loss, step, trainer.optimizers[0].param_groups[0]["lr"])
        if _stepped_mid_epoch(trainer, batch_idx) and _logs_now(trainer):
            self._check(trainer)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if _logs_now(trainer):
            self._check(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, *_: object) -> None:
        self._check(trainer)  # every rank saves together, so every rank takes part

    def _note(self, loss: Tensor, step: int, lr: float) -> None:
        """Keep the first bad (step, loss, lr): read on the CPU (1-3 us, where tensor
        operations cost 100 us), kept on the device elsewhere (no wait for it)."""
        if loss.device.type != "cpu":
            self.bad = first_bad(self.bad, loss.detach(), step, lr)
        elif self.bad is None and not math.isfinite(value := loss.item()):
            self.bad = torch.tensor([step, value, lr], dtype=torch.float64)

    def _check(self, trainer: L.Trainer) -> None:
        """Raise `Diverged` for the earliest bad loss of any rank."""
        none = torch.full((3,), -1.0, dtype=torch.float64, device=trainer.strategy.root_device)
        ranks = trainer.strategy.all_gather(none if self.bad is None else self.bad)
        ranks = ranks.reshape(-1, 3).tolist()
        diverged = [rank for rank in ranks if rank[0] >= 0]
        if diverged:
            step, loss, lr = min(diverged)
            raise Diverged(int(step), "the loss", loss, lr)


def first_bad(bad: Tensor | None, loss: Tensor, step: int, lr: float) -> Tensor:
    """`bad`, or (step, loss, lr) if `loss` is the first that is not finite, computed
    where `loss` is without reading it back."""
    loss = loss.double()
    if bad is None:
        bad = torch.full((3,), -1.0, dtype=torch.float64, device=loss.device)
    keep = torch.isfinite(loss) | (bad[0] >= 0)
    row = torch.stack((loss.new_full((), step), loss, loss.new_full((), lr)))
    return torch.where(keep, bad, row)


def _install(handler: Any) -> dict[signal.Signals, Any]:
    """`handler` for SIGNALS where Python allows it (the main thread); the ones replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in SIGNALS}


def _restore(previous: dict[signal.Signals, Any]) -> None:
    while previous:  # emptied: restored once
        signal.signal(*previous.popitem())


class SignalStop(L.Callback):
    """SIGINT, SIGTERM or SIGUSR1 (SLURM's notice), from a run folder's claim to its
    metrics.json (`with SignalStop() as signals`). In training: finish the step, save it
    to last.ckpt and raise `Interrupted`, so a resumed run ends with the weights of an
    uninterrupted one; a second Ctrl-C stops at once. Elsewhere: raise `Stopped` at once,
    so the run still writes its status, or in `held()` when the block ends. Under DDP the
    ranks agree every `log_every_n_steps` steps (one all-gather) and stop after the same
    step; a stop due on a step Lightning logs comes a step later (it logs after this
    hook). Saves last.ckpt at the end when the last epochs were not validated. Why not
    Lightning's own: tests/test_lightning_shortfalls.py."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.training = self.holding = False
        self.outside: dict[signal.Signals, Any] = {}  # the handlers before the run
        self.replaced: dict[signal.Signals, Any] = {}  # in training: Lightning's SIGTERM's
        self.validated_step = -1  # callbacks.last saved this step
        self.stop_next = False  # agreed on a step Lightning logs: stop after the next

    def __enter__(self) -> SignalStop:
        self.outside = _install(self._receive)
        return self

    def __exit__(self, *exc: object) -> None:
        _restore(self.outside)

    def _receive(self, signum: int, _frame: FrameType | None) -> None:
        again = signum == signal.SIGINT and self.received is not None  # a second Ctrl-C
        if not (self.training or self.holding) or (self.training and again):
            raise Stopped(signum)
        self.received = self.received or signal.Signals(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def raise_pending(self) -> None:
        if self.received:
            raise Stopped(self.received)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received, self.stop_next, self.training = None, False, True
        self.replaced = _install(self._receive)  # Lightning's broadcasts inside the handler
        self._check(trainer)  # a SIGTERM that came while the run was set up

    @override
    def on_train_batch_end(self, trainer: L.Trainer, *hook: Any) -> None:
        if not _stepped_mid_epoch(trainer, batch_idx=hook[-1]):
            return
        if self.stop_next:
            self._stop(trainer)
        if self._due(trainer):
            self._check(trainer, defer=_logs_now(trainer))

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_step = trainer.global_step

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stop_next or self._due(trainer):  # after the epoch's validation
            self._check(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        try:
            self._check(trainer)
        finally:
            self.training = False  # from here a signal raises Stopped again
            _restore(self.replaced)
        # a finished run's last.ckpt is its final state (decided alike on every rank)
        keeps_last = any(c.monitor == "step" for c in trainer.checkpoint_callbacks)
        if keeps_last and self.validated_step != trainer.global_step:
            trainer.save_checkpoint(_last(trainer), weights_only=False)

    @override
    def on_exception(self, *_: object) -> None:
        _restore(self.replaced)  # `training` stays: what a second Ctrl-C stopped

    def _due(self, trainer: L.Trainer) -> bool:
        return _logs_now(trainer) or (trainer.world_size == 1 and self._signalled(trainer))

    def _signalled(self, trainer: L.Trainer) -> bool:
        # Lightning notes a SIGTERM that came before our handler was in place
        return self.received is not None or trainer.received_sigterm

    def _check(self, trainer: L.Trainer, defer: bool = False) -> None:
        """Agree whether any rank was signalled; stop now, or (`defer`) after the next step."""
        mine = torch.tensor([float(self._signalled(trainer))], device=trainer.strategy.root_device)
        if not trainer.strategy.all_gather(mine).any():
            return
        if defer:
            self.stop_next = True
        else:
            self._stop(trainer)

    def _stop(self, trainer: L.Trainer) -> NoReturn:
        """Save the step to last.ckpt (every rank takes part, rank 0 writes) and stop."""
        received = self.received or signal.SIGTERM  # Lightning's flag, or another rank's
        trainer.save_checkpoint(_last(trainer), weights_only=False)
        run_dir = trainer.strategy.broadcast(trainer.default_root_dir)  # where rank 0 saved it
        raise Interrupted(received.name, 128 + received, trainer.global_step, run_dir)


def _last(trainer: L.Trainer) -> Path:
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"  # the run folder


class EpochProgressBar(ProgressBar):
    """One bar over the run, in epochs, redrawn every `refresh_rate` epochs. Lightning's
    TQDMProgressBar redraws several times an epoch: on the lesson's 1000 one-step epochs
    its hooks took 0.45 ms of CPU a step (these 0.03) and wrote 277 kB (these 1.6 kB)."""

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
            epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            if trainer.max_steps > 0 and trainer.num_training_batches not in (0, math.inf):
                per_epoch = math.ceil(
                    trainer.num_training_batches / trainer.accumulate_grad_batches
                )
                by_steps = math.ceil(trainer.max_steps / per_epoch)
                epochs = min(epochs, by_steps) if epochs else by_steps
            self.bar = tqdm(
                total=epochs, initial=trainer.current_epoch, unit="epoch", dynamic_ncols=True
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
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: object) -> None:
        self.on_train_end(trainer, pl_module)
