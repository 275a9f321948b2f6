"""Where a run goes on from: the last.ckpt of the folder `resume=` names, and for a SLURM
job requeued after SIGUSR1 (`sbatch --signal=USR1@90`) the run that job left. SIGUSR1
stops the run after a whole step like SIGTERM (callbacks.SignalStop), the job is put back
in the queue, and the requeued job, which runs the same command, resumes that run. Why
not Lightning's `SLURMEnvironment(auto_requeue=True)`: it saves from inside the signal
handler, in the middle of the step, then trains on (tests/test_lightning_shortfalls.py)."""

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
    """The folder `resume`, its run's fold and its last.ckpt, the folder locked meanwhile.
    Rank 0 reads it (other machines may have none) and tells the others the fold."""
    run_dir = Path(composed.cfg.resume).expanduser()
    last = run_dir / "checkpoints" / "last.ckpt"
    weights: dict[str, Any] | None = None

    def read_fold() -> int | None:
        nonlocal weights
        if is_rank_zero():  # before reading its state: another process may be writing it
            lock_run_dir(run_dir)
        checkpoint = _resumable(composed, run_dir, last)
        weights = checkpoint["state_dict"]
        return checkpoint[CHECKPOINT_SECTION]["fold"]  # a fold trains on its own split

    try:
        fold = from_rank_zero(read_fold)  # on the other machines weights stay None
        yield run_dir, fold, (last, weights)
    finally:
        release_run_dir(run_dir)


def _resumable(composed: SourcedConfig, run_dir: Path, last: Path) -> dict[str, Any]:
    """The checkpoint to resume from, refused when missing or when the run is done (a
    finished run goes on only if trainer.max_epochs was raised)."""
    cfg = composed.cfg
    if not last.is_file():
        raise ConfigError(
            [f"resume={cfg.resume} ({CLI}): no checkpoints/last.ckpt there to resume"]
        )
    checkpoint = load_checkpoint(last)
    done = checkpoint["epoch"] + 1
    finished = read_status(run_dir) == "finished"  # not stopped by a signal, a crash or a kill
    if finished and cfg.trainer.max_epochs is not None and done >= cfg.trainer.max_epochs:
        raise ConfigError(
            [
                f"resume={cfg.resume} ({CLI}): that run finished its {done} epochs; to "
                f"train it further raise trainer.max_epochs (e.g. trainer.max_epochs={2 * done})"
            ]
        )
    return checkpoint


def resume_requeued(composed: SourcedConfig) -> None:
    """In a requeued SLURM job, set `resume` to the run this job left."""
    # rank 0 looks: another machine may not see the runs folder
    requeued = from_rank_zero(lambda: str(requeued_run(composed) or ""))
    if requeued:
        if is_rank_zero():
            print(f"litlab: SLURM job {slurm_job()}: resuming {requeued}", file=sys.stderr)
        composed.cfg.resume = requeued


@contextlib.contextmanager
def requeue_on_usr1() -> Iterator[None]:
    """Put this SLURM job back in the queue when SIGUSR1 stopped its run."""
    try:
        yield
    except Interrupted as exc:
        job = slurm_job()
        if exc.exit_code == 128 + signal.SIGUSR1 and job and is_rank_zero():
            _requeue(job)
        raise


def _requeue(job: str) -> None:
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except OSError as exc:
        print(f"litlab: could not requeue SLURM job {job}: {exc}", file=sys.stderr)
        return
    outcome = "requeued" if done.returncode == 0 else f"not requeued ({done.stderr.strip()})"
    print(f"litlab: SLURM job {job} {outcome}: scontrol requeue {job}", file=sys.stderr)
