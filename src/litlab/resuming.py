"""Where a run goes on from: the last.ckpt of the folder `resume=` names, or the run a
SLURM job left when SIGUSR1 (`sbatch --signal=USR1@90`) stopped it after a whole step and
it was requeued. Not Lightning's `SLURMEnvironment(auto_requeue=True)`: it saves inside
the signal handler, mid-step, and trains on (tests/test_lightning_shortfalls.py)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litlab.checkpoints import CHECKPOINT_SECTION, load_checkpoint
from litlab.config import CLI, ConfigError, SourcedConfig
from litlab.distributed import from_rank_zero, is_rank_zero, slurm_job
from litlab.errors import Interrupted
from litlab.rundirs import lock_run_dir, read_status, release_run_dir, requeued_run

ResumeFrom = tuple[Path, dict[str, Any] | None]  # last.ckpt, and its weights where read


@contextlib.contextmanager
def last_checkpoint(composed: SourcedConfig) -> Iterator[tuple[Path, int | None, ResumeFrom]]:
    """The folder `resume`, its run's fold and last.ckpt, locked meanwhile; refused when
    there is none, or the run finished (unless trainer.max_epochs was raised). Rank 0
    reads it (other machines may have no such folder) and tells the others the fold."""
    cfg = composed.cfg
    run_dir = Path(cfg.resume).expanduser()
    last = run_dir / "checkpoints" / "last.ckpt"
    weights: dict[str, Any] | None = None

    def read_fold() -> int | None:
        nonlocal weights
        if is_rank_zero():  # before reading it: another process may be writing it
            lock_run_dir(run_dir)
        if not last.is_file():
            raise ConfigError(
                [f"resume={cfg.resume} ({CLI}): no checkpoints/last.ckpt there to resume"]
            )
        checkpoint = load_checkpoint(last)
        done, epochs = checkpoint["epoch"] + 1, cfg.trainer.max_epochs
        if read_status(run_dir) == "finished" and epochs is not None and done >= epochs:
            raise ConfigError(
                [
                    f"resume={cfg.resume} ({CLI}): that run finished its {done} epochs; to train "
                    f"it further raise trainer.max_epochs (e.g. trainer.max_epochs={2 * done})"
                ]
            )
        weights = checkpoint["state_dict"]
        return checkpoint[CHECKPOINT_SECTION]["fold"]  # a fold trains on its own split

    try:
        fold = from_rank_zero(read_fold)  # on the other machines weights stay None
        yield run_dir, fold, (last, weights)
    finally:
        release_run_dir(run_dir)


def resume_requeued(composed: SourcedConfig) -> None:
    """In a requeued SLURM job, set `resume` to the run this job left."""
    requeued = from_rank_zero(lambda: str(requeued_run(composed) or ""))
    if requeued:
        if is_rank_zero():
            print(f"litlab: SLURM job {slurm_job()}: resuming {requeued}", file=sys.stderr)
        composed.cfg.resume = requeued


@contextlib.contextmanager
def requeue_on_usr1() -> Iterator[None]:
    """Put this SLURM job back in the queue (rank 0) when SIGUSR1 stopped its run."""
    try:
        yield
    except Interrupted as exc:
        job = slurm_job()
        if exc.exit_code == 128 + signal.SIGUSR1 and job and is_rank_zero():
            try:
                done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
                error = done.stderr.strip() if done.returncode else None
            except OSError as exc:  # no scontrol here
                error = str(exc)
            outcome = f"not requeued ({error})" if error is not None else "requeued"
            print(f"litlab: SLURM job {job} {outcome}: scontrol requeue {job}", file=sys.stderr)
        raise
