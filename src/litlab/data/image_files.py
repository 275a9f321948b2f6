"""Finding and decoding image files: a folder of class sub-folders (or of train/, val/,
test/ folders of them), or a CSV of paths; each image decoded by Pillow to a uint8 square.
Links are followed only within the data's own folder: files are data, and a link may not
make a data folder read files elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from litlab.data.columns import label_text

SPLITS = ("train", "val", "test")


def image_extensions() -> set[str]:
    """The file endings Pillow can open here (.png, .jpg, .jpeg, .bmp, .gif, .webp, ...)."""
    Image.init()
    return {ext.lower() for ext in Image.registered_extensions()}


def decode(path: str | Path, channels: int, size: int) -> np.ndarray:
    """The image at `path` as (size, size, channels) uint8: turned upright as its EXIF
    orientation says (a phone's photo), any mode made RGB or grey as Pillow's `convert`
    does (alpha dropped, as torchvision's loader does), stretched to a square of `size`.
    Raises what Pillow raises for a file it cannot decode."""
    mode = "RGB" if channels == 3 else "L"
    with Image.open(path) as image:
        image.draft(mode, (size, size))  # a JPEG decodes at a reduced scale: faster
        upright = ImageOps.exif_transpose(image)
        square = _eight_bit(upright).convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.array(square, dtype=np.uint8)  # a copy: writable, as torch wants
    return pixels.reshape(size, size, channels)


def _eight_bit(image: Image.Image) -> Image.Image:
    """A 16- or 32-bit integer grey image (a 16-bit PNG) scaled from 0..65535, a float
    one from 0..1, to 8 bits. Pillow's `convert` would clip them at 255: nearly white."""
    if image.mode.startswith("I") or image.mode == "F":
        top = 1.0 if image.mode == "F" else 65535.0
        values = np.asarray(image, dtype=np.float64) / top
        return Image.fromarray((np.clip(values, 0, 1) * 255).round().astype(np.uint8))
    return image


def decoded_or_why(path: str | Path, channels: int, size: int) -> tuple[np.ndarray | None, str]:
    """`decode`'s pixels and '', or None and why the file cannot be decoded (Pillow's
    own words)."""
    try:
        return decode(path, channels, size), ""
    # Pillow's plugins raise many kinds on a bad file: OSError, SyntaxError, ValueError,
    # EOFError, DecompressionBombError; any of them means the file is skipped.
    except Exception as exc:
        return None, f"cannot be decoded ({type(exc).__name__}: {str(exc)[:120]})"


def why_not(path: str | Path, channels: int, size: int) -> str:
    """'' for a file that decodes, else why not."""
    return decoded_or_why(path, channels, size)[1]


class ImageFiles(Dataset):
    """Images decoded from `paths` as uint8 (C, H, W), with their labels: class indices
    (int64), or for two classes a float (1,) as binary cross-entropy takes it. The paths
    sit in one numpy array: a Python list of strings would be copied page by page into
    each forked worker as their reference counts change."""

    def __init__(self, paths: list[str], labels: list[int], channels: int, size: int, binary: bool):
        self.paths = np.asarray(paths, dtype=np.str_)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.channels, self.size, self.binary = channels, size, binary

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        pixels = decode(str(self.paths[i]), self.channels, self.size)
        x = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()  # (C, H, W)
        label = int(self.labels[i])
        y = torch.tensor([float(label)]) if self.binary else torch.tensor(label)
        return x, y


class Probe(Dataset):
    """Each image's pixel sums per channel (for the normalisation), or why it is unusable:
    decoded once in `setup`, by the loader's workers."""

    def __init__(self, paths: list[str], channels: int, size: int):
        self.paths, self.channels, self.size = np.asarray(paths, dtype=np.str_), channels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray | None]:
        pixels, why = decoded_or_why(str(self.paths[i]), self.channels, self.size)
        if pixels is None:
            return why, None
        flat = pixels.reshape(-1, self.channels) / 255.0
        return "", np.stack([flat.sum(0), (flat**2).sum(0)])  # (2, C)


@dataclass
class Item:
    """One file found under data.path: where, its class, and its split folder if any."""

    path: Path
    label: str
    part: str = ""  # train, val or test for a folder with those sub-folders


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, its links followed, is still under `root` (resolved)."""
    return path.resolve().is_relative_to(root)


def scan_folder(root: Path) -> tuple[list[Item], list[dict[str, str]], str]:
    """Every file of `root/<class>/` (or `root/<train|val|test>/<class>/`), sorted; the
    files skipped, with why; and the layout found. Links are followed only within
    `root`: a data folder may not read files elsewhere through a link."""
    parts = [p for p in SPLITS if (root / p).is_dir() and inside(root / p, root.resolve())]
    items: list[Item] = []
    skipped: list[dict[str, str]] = []
    for part in parts or [""]:
        pool = root / part if part else root
        for entry in sorted(pool.iterdir()):
            if entry.is_dir() and inside(entry, root.resolve()):
                items += _class_files(entry, root, part, skipped)
            else:
                skipped.append({"path": str(entry), "why": _stray(entry)})
    layout = f"the {'/, '.join(parts)}/ folders" if parts else "class folders, split stratified"
    return items, skipped, layout


def _stray(entry: Path) -> str:
    if entry.is_dir():
        return "a link to a folder outside data.path, not followed"
    return "not in a class folder (data.path/<class>/<image>)"


def _class_files(folder: Path, root: Path, part: str, skipped: list[dict[str, str]]) -> list[Item]:
    """The files under one class folder (recursively, links inside `root` only)."""
    found, known, real_root = [], image_extensions(), root.resolve()
    for path in sorted(walk(folder)):
        if not inside(path, real_root):
            skipped.append({"path": str(path), "why": "a link to outside data.path"})
        elif path.suffix.lower() not in known:
            skipped.append(
                {"path": str(path), "why": f"not an image file ({path.suffix or 'no'} ending)"}
            )
        else:
            found.append(Item(path, folder.name, part))
    return found


def walk(folder: Path) -> Iterator[Path]:
    """Files under `folder`; a linked folder is not entered (os.walk's default)."""
    for parent, _, files in os.walk(folder):
        for name in files:
            yield Path(parent) / name


def read_list(csv: Path, image_column: str, target: str) -> tuple[list[Item], list[dict[str, str]]]:
    """The rows of a CSV of image paths (relative to its folder) and labels; a row whose
    path is missing, absolute, or leads out of the CSV's folder is skipped, said why."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    for key, column in (("image_column", image_column), ("target", target)):
        if column not in frame.columns:
            raise ValueError(
                f"{key}={column!r}: no such column in {csv}; its columns are: "
                f"{', '.join(map(str, frame.columns))}"
            )
    folder, items, skipped = csv.parent.resolve(), [], []
    labels = label_text(frame[target])
    for row, (name, label) in enumerate(zip(frame[image_column], labels, strict=True), start=2):
        where = f"{csv}:{row}"
        if pd.isna(name) or pd.isna(label):
            skipped.append(
                {"path": where, "why": f"no {image_column if pd.isna(name) else target}"}
            )
        elif Path(name).is_absolute() or not inside(folder / name, folder):
            why = "a path outside the CSV's folder (paths are relative to it, within it)"
            skipped.append({"path": f"{where} {name}", "why": why})
        else:
            items.append(Item(folder / name, str(label)))
    return items, skipped


class Shard(DistributedSampler):
    """This rank's share of the indices 0..n-1. With `shuffle` (training), a new order
    each epoch drawn from the seed and the epoch (Lightning calls `set_epoch`), so a run
    resumed at an epoch's start goes on in the order an uninterrupted one has, cut to
    equal shares so every rank takes as many steps. Without (evaluation), every
    `world_size`-th index, none repeated: metrics gathered over the ranks are one
    process's (torch's DistributedSampler pads with repeats). Being a DistributedSampler,
    Lightning leaves it in place under DDP."""

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1):
        # not DistributedSampler.__init__: it asks torch.distributed for the world, which
        # is not set up yet when the recipe counts the training batches
        self.n, self.seed, self.shuffle, self.drop_last = n, seed, shuffle, shuffle
        self.rank, self.num_replicas, self.epoch = rank, world_size, 0

    def __len__(self) -> int:
        if self.shuffle:
            return self.n // self.num_replicas
        return len(range(self.rank, self.n, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.rank, self.n, self.num_replicas))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator)
        return iter(order[self.rank :: self.num_replicas][: len(self)].tolist())
