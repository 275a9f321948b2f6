"""Checkpoint files: written atomically, read without running code.

Lightning's own save stages the file in the system's temporary folder and moves it into
place without an fsync: when that folder is on another file system the move is a copy,
and a kill or power cut in the middle leaves a torn `last.ckpt`. Here the file is
written beside its target, flushed to disk and renamed over it, so at every moment the
target is either the previous checkpoint or the new one, whole.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from typing_extensions import override

from litlab.errors import ConfigError

KEY = "litlab"  # where StoreConfig puts the run's config in a checkpoint


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temporary file beside `path`, flush it to disk, rename it to
    `path`. A failure before the rename removes the temporary file and leaves `path` as
    it was; one in the folder's fsync after it leaves the new file in place."""
    partial = path.with_name(f".{path.name}.partial")  # the next save reuses a stale one
    try:
        with open(partial, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself reaches the disk
    finally:
        os.close(folder)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with `write_atomically`. A write that fails (a full
    disk, a folder made read-only) is an error naming the checkpoint, never skipped.
    Resuming under DDP, rank 0 alone reads the checkpoint and sends it to the others."""

    @override
    def load_checkpoint(
        self, path: str | Path, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Why here: Lightning's `fit(ckpt_path=...)` reads the file on every rank, and the
        other machines of a job without a shared file system have no such file. Every rank
        calls this at the same point of `fit`, so the broadcast pairs up."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return super().load_checkpoint(path, map_location, weights_only)
        box: list[Any] = [None]
        if dist.get_rank() == 0:
            try:
                box[0] = super().load_checkpoint(path, map_location, weights_only)
            except Exception as exc:
                box[0] = RuntimeError(f"rank 0 could not read checkpoint {path}: {exc}")
                dist.broadcast_object_list(box, src=0)  # the others stop too, not wait
                raise
        dist.broadcast_object_list(box, src=0)
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: fsspec's way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(target, lambda file: torch.save(checkpoint, file))
        except OSError as exc:
            raise OSError(
                exc.errno, f"checkpoint {target} not saved ({exc.strerror or exc})"
            ) from exc


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path`, refused with one clear error when it is not one of ours.

    `weights_only=True`: loading a file must not run code from it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError([f"{file}: no such checkpoint file"])
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
    ) as exc:
        # an empty file's EOFError has no text: name the exception then
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError([f"{file}: not a readable checkpoint ({reason})"]) from None
    if not isinstance(checkpoint, dict) or KEY not in checkpoint:
        raise ConfigError([f"{file}: not a litlab checkpoint (no stored config)"])
    return checkpoint
