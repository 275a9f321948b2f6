"""Errors a run stops on with a message for the user; free of heavy imports, so the
command line catches them before torch is imported."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config a user can fix; the message lists every problem found."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


class MissingPackage(ConfigError):
    """A class of the config needs an optional package that is not installed."""


class DataError(ConfigError):
    """Data that cannot be used as it is (not a mistake in the config): one line."""

    def __init__(self, message: str):
        super().__init__([message])


class Diverged(RuntimeError):
    """The training loss, or a weight about to be saved, stopped being a finite number."""

    def __init__(self, step: int, what: str, value: float, lr: float):
        super().__init__(
            f"training diverged at step {step}: {what} is {value}. Lower the learning rate "
            f"(optimizer.lr, {lr:g} at that step) or clip gradients (trainer.gradient_clip_val=1.0)"
        )


class PeerLost(RuntimeError):
    """A collective of a DDP job failed: another process is gone or stopped answering."""

    def __init__(self, reason: str, run_dir: str):
        super().__init__(
            f"another process of this DDP job is gone or stopped answering ({reason}); the "
            f'run stopped. Continue it with: make train ARGS="resume={run_dir}"'
        )

    @classmethod
    def of(cls, exc: RuntimeError, run_dir: str) -> PeerLost | None:
        """The PeerLost `exc` means, if torch.distributed raised it (gloo raises plain
        RuntimeErrors that name it)."""
        import torch.distributed as dist  # only now: this module is imported before torch

        if isinstance(exc, dist.DistError) or any(w in str(exc) for w in ("gloo", "NCCL")):
            return cls(str(exc).splitlines()[0][:300], run_dir)
        return None


class RunBusy(OSError):
    """Another process owns the run folder (rundirs.lock_run_dir)."""


class Stopped(Exception):
    """A signal outside the training loop (callbacks.SignalStop)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"signal {signum}")


class Interrupted(RuntimeError):
    """A signal stopped a run: in training after a saved step, or elsewhere (`when`) at
    once; the message says what to run next."""

    def __init__(
        self, signal_name: str, exit_code: int, step: int, run_dir: str, when: str | None = None
    ):
        self.exit_code = exit_code  # 128 + the signal's number, as shells report it
        resume = f'Continue it with: make train ARGS="resume={run_dir}"'
        if when is None:
            text = f"training stopped after step {step}, saved in {run_dir}/checkpoints/last.ckpt"
        elif step >= 0:  # a checkpoint was kept: resume= goes on from it
            text = f"stopped {when}; {run_dir}/checkpoints/last.ckpt is kept"
        else:
            text = f"stopped {when}; nothing was kept" + (f" in {run_dir}" if run_dir else "")
            resume = "Start the run again"
        super().__init__(f"{signal_name}: {text}. {resume}")


class SweepStopped(RuntimeError):
    """A signal stopped a sweep: its runs were stopped first, the summary so far written."""

    def __init__(self, signal_name: str, exit_code: int, summary: str):
        self.exit_code = exit_code  # 128 + the signal's number, as shells report it
        super().__init__(
            f"{signal_name}: sweep stopped; the summary so far is in {summary}. Run the same "
            "command again to go on: finished runs are kept, interrupted ones resume"
        )
