"""Checkpoint files: written atomically, read without running code.

Lightning's own save stages the file in the system's temporary folder and moves it into
place without an fsync: when that folder is on another file system the move is a copy,
and a kill or power cut in the middle leaves a torn `last.ckpt`. Here the file is
written beside its target, flushed to disk and renamed over it, so at every moment the
target is either the previous checkpoint or the new one, whole.
"""

from __future__ import annotations

import errno
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
from litlab.trust import plain_config

CHECKPOINT_SECTION = "litlab"  # where StoreConfig puts the run's config in a checkpoint


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temporary file beside `path`, flush it to disk, rename it to
    `path`. A failure before the rename removes the temporary file and leaves `path` as
    it was; one in the folder's fsync after it leaves the new file in place.

    Never through a link: the temporary file is created anew (a link of that name is
    removed, not followed), the rename replaces a link at `path` rather than writing
    where it points, and a folder that is itself a link is refused."""
    if path.parent.is_symlink():
        raise OSError(errno.ELOOP, f"{path.parent} is a link; litlab never writes through one")
    partial = path.with_name(f".{path.name}.partial")  # the next save reuses a stale one
    try:
        partial.unlink(missing_ok=True)
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
    """`text` into `path`, atomically and never through a link (`write_atomically`)."""
    write_atomically(path, lambda file: file.write(text.encode()))


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

    `weights_only=True`: loading a file must not run code from it. Its entries must be
    stored uncompressed, as torch.save writes them: a compressed one could inflate a
    small file to any size. The tensors are memory-mapped, so nothing is copied until a
    network whose shapes match takes them (`check_fits`)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError([f"{file}: no such checkpoint file"])
    _refuse_compressed(file)
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
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
    problem = _layout_problem(checkpoint)
    if problem:
        raise ConfigError([f"{file}: not a litlab checkpoint ({problem})"])
    plain_config(checkpoint[CHECKPOINT_SECTION]["config"], str(file))
    plain_config(checkpoint[CHECKPOINT_SECTION]["choices"], f"{file} (choices)")
    return checkpoint


def _refuse_compressed(file: Path) -> None:
    try:
        with zipfile.ZipFile(file) as archive:
            squeezed = [
                i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED
            ]
    except (zipfile.BadZipFile, OSError) as exc:
        raise ConfigError([f"{file}: not a readable checkpoint ({exc})"]) from None
    if squeezed:
        raise ConfigError(
            [
                f"{file}: entry {squeezed[0]} is compressed; torch.save stores entries as they "
                "are, so this file was not written by it"
            ]
        )


def _layout_problem(checkpoint: Any) -> str | None:
    """What a litlab checkpoint lacks, or a weight that is not a finite number; None."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get(CHECKPOINT_SECTION), dict):
        return "no stored config"
    stored = checkpoint[CHECKPOINT_SECTION]
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
    """Refuse `weights` that are not the network's: other names, or other shapes (checked
    before anything is copied: a wrong shape would otherwise fail deep in torch)."""
    own = module.state_dict()
    missing = [key for key in own if key not in weights]
    extra = [key for key in weights if key not in own]
    if missing or extra:
        names = "; ".join(
            f"{what} {', '.join(keys[:3])}"
            for what, keys in (("missing", missing), ("unexpected", extra))
            if keys
        )
        raise ConfigError([f"{source}: not a checkpoint of this run ({names})"])
    for key, tensor in own.items():
        if weights[key].shape != tensor.shape:
            raise ConfigError(
                [
                    f"{source}: not a checkpoint of this run ({key} has shape "
                    f"{tuple(weights[key].shape)}, the network's is {tuple(tensor.shape)})"
                ]
            )
