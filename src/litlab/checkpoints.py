"""Checkpoint files: written atomically (Lightning's writer stages them in /tmp and moves
them without an fsync, a copy that a kill tears when /tmp is another file system), read
without running code."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from pickle import UnpicklingError
from typing import IO, Any
from zipfile import BadZipFile, ZipFile

import torch
import torch.distributed as dist
from lightning.fabric.plugins import TorchCheckpointIO
from typing_extensions import override

from litlab.errors import ConfigError
from litlab.trust import plain_config

CHECKPOINT_SECTION = "litlab"  # where StoreConfig puts the run's config in a checkpoint
UNREADABLE = (UnpicklingError, BadZipFile, EOFError, RuntimeError, ValueError, OSError)


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """`write` into a new file beside `path`, fsync it and rename it over `path`: `path`
    is the old file or the new one, whole. Never through a link: the new file is made
    anew, the rename replaces a link, and a folder that is a link is refused."""
    if path.parent.is_symlink():
        raise OSError(errno.ELOOP, f"{path.parent} is a link; litlab never writes through one")
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.unlink(missing_ok=True)  # a stale one
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as file:
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


def write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda file: file.write(text.encode()))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, atomic; a failed write is an error naming the file.
    Under DDP rank 0 alone reads a checkpoint and sends it: `fit(ckpt_path=...)` reads on
    every rank, and other machines without a shared file system have no such file."""

    @override
    def load_checkpoint(
        self, path: str | Path, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return super().load_checkpoint(path, map_location, weights_only)
        box: list[Any] = [None]
        if dist.get_rank() == 0:
            try:
                box[0] = super().load_checkpoint(path, map_location, weights_only)
            except Exception as exc:  # sent too: the others stop rather than wait
                box[0] = RuntimeError(f"rank 0 could not read checkpoint {path}: {exc}")
        dist.broadcast_object_list(box, src=0)  # every rank is at the same point of fit
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(target, lambda file: torch.save(checkpoint, file))
        except OSError as exc:
            raise OSError(
                exc.errno, f"checkpoint {target} not saved ({exc.strerror or exc})"
            ) from exc


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path`, or one clear error when it is not one of ours. Read with
    `weights_only=True` (no code runs), memory-mapped; a compressed entry is refused
    (torch.save stores them as they are; one could inflate to any size)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError([f"{file}: no such checkpoint file"])
    try:
        with ZipFile(file) as archive:
            squeezed = [i.filename for i in archive.infolist() if i.compress_type != 0]
        if not squeezed:
            checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except UNREADABLE as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]  # an EOFError has no text
        raise ConfigError([f"{file}: not a readable checkpoint ({reason})"]) from None
    if squeezed:
        raise ConfigError(
            [f"{file}: entry {squeezed[0]} is compressed; torch.save never compresses an entry"]
        )
    problem = _layout_problem(checkpoint)
    if problem:
        raise ConfigError([f"{file}: not a litlab checkpoint ({problem})"])
    plain_config(checkpoint[CHECKPOINT_SECTION]["config"], str(file))
    plain_config(checkpoint[CHECKPOINT_SECTION]["choices"], f"{file} (choices)")
    return checkpoint


def _layout_problem(checkpoint: Any) -> str | None:
    """What a litlab checkpoint lacks, or a weight that is not a finite number; None."""
    stored = checkpoint.get(CHECKPOINT_SECTION) if isinstance(checkpoint, dict) else None
    if not isinstance(stored, dict):
        return "no stored config"
    if not isinstance(stored.get("config"), dict) or not isinstance(stored.get("choices"), dict):
        return f"{CHECKPOINT_SECTION}.config and {CHECKPOINT_SECTION}.choices must be mappings"
    if stored.get("fold") is not None and type(stored["fold"]) is not int:
        return f"{CHECKPOINT_SECTION}.fold must be a whole number or null"
    for key in ("epoch", "global_step"):
        if type(checkpoint.get(key)) is not int:
            return f"{key} must be a whole number"
    weights = checkpoint.get("state_dict")
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        return "state_dict must map names to tensors"
    for key, tensor in weights.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return f"weight {key} is not finite: the weights of a run that diverged"
    return None


def check_fits(module: torch.nn.Module, weights: dict[str, Any], source: Path) -> None:
    """Refuse `weights` with other names or shapes than the network's, before anything is
    copied (a wrong shape would fail deep in torch)."""
    own = {key: tuple(tensor.shape) for key, tensor in module.state_dict().items()}
    theirs = {key: tuple(tensor.shape) for key, tensor in weights.items()}
    wrong = [f"missing {k}" for k in own if k not in theirs]
    wrong += [f"unexpected {k}" for k in theirs if k not in own]
    if not wrong:
        wrong = [f"{k} has shape {theirs[k]}, the network's is {own[k]}" for k in own]
        wrong = [w for k, w in zip(own, wrong, strict=True) if theirs[k] != own[k]]
    if wrong:
        raise ConfigError([f"{source}: not a checkpoint of this run ({'; '.join(wrong[:3])})"])
