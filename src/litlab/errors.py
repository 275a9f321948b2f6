"""Errors a run stops on with a message for the user (kept free of heavy imports, so the
command line can catch them before it has imported torch)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config a user can fix; the message lists every problem found."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


class MissingPackage(ConfigError):
    """A config picks a class whose package is an optional one, not installed: said in
    one line with the command that installs it."""


class DataError(ConfigError):
    """A table that cannot be used as it is (not a mistake in the config): one line that
    says what is wrong with it and what to do."""

    def __init__(self, message: str):
        super().__init__([message])


class Diverged(RuntimeError):
    """The training loss, or a weight about to be saved, stopped being a finite number."""

    def __init__(self, step: int, what: str, value: float, lr: float, unfuse: bool = False):
        # Lightning cannot clip a fused optimiser's gradients under 16-mixed's scaling:
        # there the hint must turn fusing off too, or following it would crash (`unfuse`).
        clip = "trainer.gradient_clip_val=1.0" + (" optimizer.fused=false" if unfuse else "")
        super().__init__(
            f"training diverged at step {step}: {what} is {value}. Lower the learning rate "
            f"(optimizer.lr, {lr:g} at that step) or clip gradients ({clip})"
        )


def fused_under_fp16(trainer: object) -> bool:
    """Whether `trainer` (a lightning.Trainer) runs a fused optimiser at 16-mixed, where
    Lightning refuses to clip gradients."""
    half = str(getattr(trainer, "precision", "")) in ("16-mixed", "16")
    groups = [g for opt in getattr(trainer, "optimizers", []) for g in opt.param_groups]
    return half and any(group.get("fused") for group in groups)


class PeerLost(RuntimeError):
    """A collective of a DDP job failed: another of its processes is gone or stopped
    answering within trainer.strategy.timeout."""

    def __init__(self, reason: str, run_dir: str):
        super().__init__(
            f"another process of this DDP job is gone or stopped answering ({reason}); the "
            f'run stopped. Continue it with: make train ARGS="resume={run_dir}"'
        )

    @classmethod
    def of(cls, exc: RuntimeError, run_dir: str) -> PeerLost | None:
        """The PeerLost that `exc` means, if torch.distributed raised it: gloo raises plain
        RuntimeErrors that name it (a peer's connection reset, a wait past the timeout)."""
        import torch.distributed as dist  # only now: this module is imported before torch

        if isinstance(exc, dist.DistError) or any(w in str(exc) for w in ("gloo", "NCCL")):
            return cls(str(exc).splitlines()[0][:300], run_dir)
        return None


class RunBusy(OSError):
    """Another process owns the run folder (rundirs.lock_run_dir)."""


class Stopped(Exception):
    """Raised by a SIGINT or SIGTERM handler outside the training loop (SignalStop)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"signal {signum}")


class Interrupted(RuntimeError):
    """A signal (Ctrl-C, SIGTERM) stopped a run: in training after a step that was saved,
    or elsewhere (`when`) at once, with what to run next."""

    def __init__(
        self, signal_name: str, exit_code: int, step: int, run_dir: str, when: str | None = None
    ):
        self.exit_code = exit_code  # 128 + the signal's number, as shells report it
        resume = f'Continue it with: make train ARGS="resume={run_dir}"'
        if when is None:
            text = f"training stopped after step {step}, saved in {run_dir}/checkpoints/last.ckpt"
        elif step >= 0:  # a checkpoint was kept: resume= goes on from it
            text = f"stopped {when}; {run_dir}/checkpoints/last.ckpt is kept"
        else:  # no checkpoint: nothing to continue from
            text = f"stopped {when}; nothing was kept" + (f" in {run_dir}" if run_dir else "")
            resume = "Start the run again"
        super().__init__(f"{signal_name}: {text}. {resume}")


class SweepStopped(RuntimeError):
    """A signal stopped a sweep: its runs were stopped first (each saved its step), and
    the summary so far was written."""

    def __init__(self, signal_name: str, exit_code: int, summary: str):
        self.exit_code = exit_code  # 128 + the signal's number, as shells report it
        super().__init__(
            f"{signal_name}: sweep stopped; the summary so far is in {summary}. Run the same "
            "command again to go on: finished runs are kept, interrupted ones resume"
        )
