"""Callbacks of our own, for what Lightning's do per batch and these jobs need per run."""

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
from litlab.errors import Diverged, Interrupted, Stopped, fused_under_fp16
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
        checkpoint[CHECKPOINT_SECTION] = self.stored


class RandomState(L.Callback):
    """Saves torch's random number generators in checkpoints and restores them on resume,
    so a resumed run draws what the uninterrupted one would have (dropout, augmentation).
    Under DDP every rank's own generators are saved (gathered by global rank) and each
    rank restores its own. The data order is a function of the seed and the epoch
    (TensorBatches saves how far into the epoch the run got)."""

    @override
    def state_dict(self) -> dict[str, Any]:
        own = {"cpu": torch.get_rng_state(), "cuda": _cuda_states()}
        if not _distributed():  # Lightning saves with every rank at once: all can gather
            return {"ranks": [own]}
        ranks: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, own)
        return {"ranks": ranks}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks", [state_dict])  # before: rank 0's, unnamed
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


def _cuda_states() -> list[Tensor]:
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


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


class GracefulStop(L.Callback):
    """Stops training, on every rank after the same step, when a signal comes or the loss
    stops being finite.

    SIGINT (Ctrl-C), SIGTERM (a scheduler's notice) or SIGUSR1 (SLURM's `--signal`, after
    which the run requeues the job): finish the optimiser step, save it to `checkpoint`
    in `run_dir` and stop with `Interrupted`, which the run reports. A second Ctrl-C is
    not caught: it stops at once, saving nothing more; a second SIGTERM changes nothing.

    A loss that is not finite: the first such step, its loss and learning rate are noted
    where the loss is, without waiting for the GPU; the run stops with `Diverged` naming
    that step at the next check. Checks come every `log_every_n_steps` steps (when
    Lightning logs, which waits for the GPU anyway), before every checkpoint (so none
    keeps the weights that followed) and when training ends; in one process a signal is
    also acted on after the step it came in (a Python flag: free to look at). A signal
    agreed in a step that Lightning logs stops the run after the next step, so no logged
    step is lost (Lightning logs a step after this callback's hook). Under DDP a
    check is one all-gather of four numbers a rank, so every rank decides alike; a rank
    that raised alone would leave the others waiting in the gradient all-reduce.

    last.ckpt at every validation is Lightning's own ModelCheckpoint (`callbacks.last`,
    monitor=step); this callback saves it only where that one does not: at a stop, and
    at the end of a run whose last epochs were not validated.

    Why our own signal handling: Lightning 2.6's SIGTERM handling stops with exit status
    0 (its SIGTERMException is a SystemExit without a code), it takes no SIGINT but as a
    KeyboardInterrupt, which drops the step it came in, and under DDP its handler runs a
    broadcast from inside the signal handler, whichever collective the process is in
    (tests/test_lightning_shortfalls.py shows the first two). The stop must come after a
    whole optimiser step, saved with the loops' state, so that a resumed run ends with
    the weights of an uninterrupted one (tests/fault checks it at nine points of the loop).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

    def __init__(self, run_dir: Path):
        self.run_dir, self.checkpoint = run_dir, run_dir / "checkpoints" / "last.ckpt"
        self.received: signal.Signals | None = None
        self.previous: dict[signal.Signals, Any] = {}
        self.validated_step = -1  # the step of the latest validation (callbacks.last saved it)
        self.bad: Tensor | None = None  # (step, loss, lr) of the first bad loss; step -1: none
        self.stop_next = False  # agreed at a step Lightning logs after this hook: stop next

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received, self.bad, self.stop_next = None, None, False
        if threading.current_thread() is threading.main_thread():  # where Python allows it
            self.previous = {s: signal.signal(s, self._receive) for s in self.SIGNALS}
        self._check(trainer)  # a SIGTERM that came while the run was set up

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
        # A batch whose gradients are still being accumulated is not a step (yet).
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:  # None: the module skipped this batch
            step = trainer.global_step - stepped  # the step this loss was computed in
            self._note(loss, step, trainer.optimizers[0].param_groups[0]["lr"])
        # The epoch's last step is checked at the epoch's end, after the validation due there.
        last = batch_idx + 1 == trainer.num_training_batches
        if stepped and not last and self.stop_next:
            self._stop(trainer)
        if stepped and not last and self._due(trainer):
            # Lightning logs a step after this hook: a run stopped in it would never log
            # that step, and its resumed run starts at the next one. Stop after the next.
            self._check(trainer, defer=self._logs_now(trainer))

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_step = trainer.global_step

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the epoch's validation, whose checkpoint callbacks have saved best.ckpt
        if self.stop_next or self._due(trainer):
            self._check(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        try:  # after the last epoch's end: before the test
            self._check(trainer)
        finally:
            self._restore()
        # a finished run's last.ckpt is its final state, validated or not (decided alike
        # on every rank: the step and the callbacks are the same everywhere)
        keeps_last = any(c.monitor == "step" for c in trainer.checkpoint_callbacks)
        if keeps_last and self.validated_step != trainer.global_step:
            trainer.save_checkpoint(self.checkpoint, weights_only=False)

    @override
    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    @override
    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Refuse to save the weights that followed a loss that was not finite (every
        rank saves together, so every rank can take part in the check)."""
        self._raise_if_diverged(self._agree(trainer)[1], trainer)

    def _note(self, loss: Tensor, step: int, lr: float) -> None:
        """Keep (step, loss, lr) of the first loss that is not finite, on its device.

        On the CPU reading the loss waits for nothing, and costs 1-3 us a step against
        about 100 us for the tensor operations that keep it on a GPU without reading it
        (both measured on the CPU)."""
        if loss.device.type != "cpu":
            self.bad = first_bad(self.bad, loss.detach(), step, lr)
        elif self.bad is None and not math.isfinite(value := loss.item()):
            self.bad = torch.tensor([step, value, lr], dtype=torch.float64)

    def _due(self, trainer: L.Trainer) -> bool:
        if self._logs_now(trainer):
            return True
        return trainer.world_size == 1 and self._signalled_here(trainer)

    @staticmethod
    def _logs_now(trainer: L.Trainer) -> bool:
        """Whether Lightning logs the step just taken (it does so after the hooks)."""
        return trainer.global_step % max(trainer.log_every_n_steps, 1) == 0

    def _signalled_here(self, trainer: L.Trainer) -> bool:
        """Whether a signal came to this process (Lightning notes a SIGTERM that came
        before our handler was in place)."""
        return self.received is not None or trainer.received_sigterm

    def _agree(self, trainer: L.Trainer) -> tuple[bool, list[float] | None]:
        """Whether a signal came to any rank, and (step, loss, lr) of the earliest loss
        that was not finite on any rank: one all-gather, and one wait for the device."""
        bad = self.bad
        if bad is None:  # no step yet
            bad = torch.full((3,), -1.0, dtype=torch.float64, device=trainer.strategy.root_device)
        mine = torch.cat((bad.new_full((1,), float(self._signalled_here(trainer))), bad))
        ranks = trainer.strategy.all_gather(mine).reshape(-1, 4).tolist()
        diverged = [rank[1:] for rank in ranks if rank[1] >= 0]
        return any(rank[0] for rank in ranks), min(diverged) if diverged else None

    def _check(self, trainer: L.Trainer, defer: bool = False) -> None:
        """Agree; stop for a signal now, or (`defer`) after the next step."""
        signalled, diverged = self._agree(trainer)
        self._raise_if_diverged(diverged, trainer)
        if signalled and defer:
            self.stop_next = True  # every rank: they agreed
        elif signalled:
            self._stop(trainer)

    @staticmethod
    def _raise_if_diverged(diverged: list[float] | None, trainer: L.Trainer) -> None:
        if diverged is not None:
            step, loss, lr = diverged
            raise Diverged(int(step), "the loss", loss, lr, fused_under_fp16(trainer))

    def _stop(self, trainer: L.Trainer) -> NoReturn:
        """Save the step to last.ckpt (rank 0 writes; every rank takes part) and stop.
        callbacks.last overwrites this file at the next validation of the resumed run:
        its version counter is off, so no rank asks which files exist."""
        received = self.received or signal.SIGTERM  # Lightning's flag, or another rank's
        trainer.save_checkpoint(self.checkpoint, weights_only=False)
        run_dir = trainer.strategy.broadcast(str(self.run_dir))  # where rank 0 saved it
        raise Interrupted(received.name, 128 + received, trainer.global_step, run_dir)


class StopOnSignal:
    """From the claim of a run folder to its metrics.json, SIGINT, SIGTERM and SIGUSR1 raise
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


def first_bad(bad: Tensor | None, loss: Tensor, step: int, lr: float) -> Tensor:
    """`bad`, or (step, loss, lr) if `loss` is the first that is not finite (step -1 in
    `bad`: none yet), computed where `loss` is without reading it back."""
    loss = loss.double()
    if bad is None:
        bad = torch.full((3,), -1.0, dtype=torch.float64, device=loss.device)
    keep = torch.isfinite(loss) | (bad[0] >= 0)
    row = torch.stack((loss.new_full((), step), loss, loss.new_full((), lr)))
    return torch.where(keep, bad, row)


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
