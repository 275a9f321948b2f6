"""What a run that stops before its end reports, and the status its metrics.json keeps
(`interrupted`, `diverged`, `failed`) beside the checkpoint to go on from."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

from litlab.errors import Diverged, Interrupted, PeerLost, Stopped
from litlab.rundirs import write_status


@contextlib.contextmanager
def recorded(run_dir: Path, world_size: int) -> Iterator[None]:
    """Record why the block (the fit) stopped; a failed collective of a DDP job is PeerLost."""
    try:
        yield
    except (Diverged, Interrupted, OSError) as exc:  # OSError: a file that could not be written
        record(run_dir, exc)
        raise
    except RuntimeError as exc:
        lost = PeerLost.of(exc, str(run_dir)) if world_size > 1 else None
        if lost is None:
            raise
        record(run_dir, lost)
        raise lost from None


def record(run_dir: Path, exc: Exception) -> None:
    """metrics.json for a run that stopped early; on a full disk, the error that stopped
    the run is the one to report."""
    status = {Diverged: "diverged", Interrupted: "interrupted"}.get(type(exc), "failed")
    with contextlib.suppress(OSError):
        write_status(run_dir, status, error=str(exc))


def interrupted(stop: Stopped, run_dir: Path | None, phase: str) -> Interrupted:
    """What to report for a signal outside the training loop, in `phase`: resume= if a
    checkpoint was kept, else start again."""
    name, code = signal.Signals(stop.signum).name, 128 + stop.signum
    if run_dir is None:
        return Interrupted(name, code, -1, "", "before its run folder was made")
    kept = (run_dir / "checkpoints" / "last.ckpt").is_file()
    return Interrupted(name, code, 0 if kept else -1, str(run_dir), phase)
