"""Finding image files and decoding them; a link is followed only within the data's folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from litlab.data.columns import label_text
from litlab.errors import ConfigError

SPLITS = ("train", "val", "test")
Skipped = list[dict[str, str]]  # the files not used: their path and why


def decode(path: str | Path, channels: int, size: int) -> np.ndarray:
    """The image at `path` as (size, size, channels) uint8: turned upright as its EXIF
    says, made RGB or grey (alpha dropped), stretched to a square. A 16- or 32-bit grey
    image is scaled to 8 bits first (Pillow's `convert` clips it at 255, nearly white)."""
    mode = "RGB" if channels == 3 else "L"
    with Image.open(path) as image:
        image.draft(mode, (size, size))  # a JPEG decodes at a reduced scale: faster
        upright = ImageOps.exif_transpose(image)
        if upright.mode.startswith("I") or upright.mode == "F":
            top = 1.0 if upright.mode == "F" else 65535.0
            values = np.clip(np.asarray(upright, dtype=np.float64) / top, 0, 1)
            upright = Image.fromarray((values * 255).round().astype(np.uint8))
        square = upright.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    return np.array(square, dtype=np.uint8).reshape(size, size, channels)  # writable copy


def probe(paths: list[str], channels: int, size: int) -> list[tuple[str, np.ndarray | None]]:
    """Why each image cannot be used (or ''), and its per-channel sums of pixels and squares."""
    out = []
    for path in map(str, paths):  # a loader hands numpy's str_, which Pillow's errors show
        try:
            flat = decode(path, channels, size).reshape(-1, channels) / 255.0
        # Pillow's plugins raise many kinds (OSError, SyntaxError, EOFError, ...): skipped
        except Exception as exc:
            out.append((f"cannot be decoded ({type(exc).__name__}: {str(exc)[:120]})", None))
        else:
            out.append(("", np.stack([flat.sum(0), (flat**2).sum(0)])))
    return out


class Item(NamedTuple):  # a file found under data.path
    path: Path
    label: str
    part: str = ""  # its split folder (train, val, test), if any


class ImageFiles(Dataset):
    """Images as uint8 (C, H, W), labels as class indices (a float (1,) for two). The paths
    are one numpy array: a list of strings is copied into each forked worker, page by page."""

    def __init__(self, items: list[Item], classes: list[str], channels: int, size: int):
        index = {name: i for i, name in enumerate(classes)}
        self.paths = np.asarray([str(item.path) for item in items], dtype=np.str_)
        self.labels = np.asarray([index[item.label] for item in items], dtype=np.int64)
        self.channels, self.size, self.binary = channels, size, len(classes) == 2

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        pixels = decode(str(self.paths[i]), self.channels, self.size)
        x = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()  # (C, H, W)
        label = int(self.labels[i])
        return x, torch.tensor([float(label)]) if self.binary else torch.tensor(label)


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, its links followed, is still under `root` (resolved)."""
    return path.resolve().is_relative_to(root)


def walk(folder: Path) -> list[Path]:
    """Files under `folder`, sorted; a linked folder is not entered (os.walk's default)."""
    return sorted(Path(parent) / name for parent, _, files in os.walk(folder) for name in files)


def find(path: Path, image_column: str, target: str) -> tuple[list[Item], Skipped, str]:
    """The image files of `path` (a folder or a CSV), those skipped with why, and the layout."""
    if path.is_dir():
        return scan_folder(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        return *read_list(path, image_column, target), "a CSV of paths, split stratified"
    raise ValueError(
        f"path={str(path)!r}: no such folder or CSV file; give data.path=<a folder "
        "of class sub-folders of images, or a CSV of image paths and labels>"
    )


def scan_folder(root: Path) -> tuple[list[Item], Skipped, str]:
    """The files of `root/[train|val|test/]<class>/`, those skipped and why, the layout."""
    real = root.resolve()
    parts = [p for p in SPLITS if (root / p).is_dir() and inside(root / p, real)]
    Image.init()
    known = {ext.lower() for ext in Image.registered_extensions()}  # .png, .jpg, .bmp, ...
    items, skipped = [], []
    for part in parts or [""]:
        for entry in sorted((root / part).iterdir()):
            if not (entry.is_dir() and inside(entry, real)):
                why = "a link to a folder outside data.path, not followed"
                stray = "not in a class folder (data.path/<class>/<image>)"
                skipped.append({"path": str(entry), "why": why if entry.is_dir() else stray})
                continue
            for path in walk(entry):
                if not inside(path, real):
                    skipped.append({"path": str(path), "why": "a link to outside data.path"})
                elif path.suffix.lower() not in known:
                    why = f"not an image file ({path.suffix or 'no'} ending)"
                    skipped.append({"path": str(path), "why": why})
                else:
                    items.append(Item(path, entry.name, part))
    layout = f"the {'/, '.join(parts)}/ folders" if parts else "class folders, split stratified"
    return items, skipped, layout


def read_list(csv: Path, image_column: str, target: str) -> tuple[list[Item], Skipped]:
    """A CSV's image paths (within its folder) and labels; the rows skipped and why."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    for key, column in (("image_column", image_column), ("target", target)):
        if column not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise ValueError(
                f"{key}={column!r}: no such column in {csv}; its columns are: {columns}"
            )
    folder, items, skipped = csv.parent.resolve(), [], []
    labels = label_text(frame[target])
    for row, (name, label) in enumerate(zip(frame[image_column], labels, strict=True), start=2):
        if pd.isna(name) or pd.isna(label):
            why = f"no {image_column if pd.isna(name) else target}"
            skipped.append({"path": f"{csv}:{row}", "why": why})
        elif Path(name).is_absolute() or not inside(folder / name, folder):
            why = "a path outside the CSV's folder (paths are relative to it, within it)"
            skipped.append({"path": f"{csv}:{row} {name}", "why": why})
        else:
            items.append(Item(folder / name, str(label)))
    return items, skipped


def to_predict(path: Path, image_column: str) -> pd.DataFrame:
    """Images to predict: a folder's files, one image, or a CSV of paths (attrs["outside"]
    marks those leading out of the folder)."""
    root = (path if path.is_dir() else path.parent).resolve()
    if path.is_dir():
        frame = pd.DataFrame({"path": [str(p) for p in walk(path)]})
    elif path.suffix.lower() == ".csv":
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if image_column not in table.columns:
            said = f"{path}: no column {image_column!r} of image paths (data.image_column)"
            raise ConfigError([said])
        frame = table.drop(columns=[image_column, "path"], errors="ignore")
        frame.insert(0, "path", [str(path.parent / n) for n in table[image_column]])
    elif path.is_file():
        return pd.DataFrame({"path": [str(path)]})
    else:
        raise ConfigError([f"{path}: no such file or folder; give images, a folder or a CSV"])
    frame.attrs["outside"] = [not inside(Path(p), root) for p in frame["path"]]
    return frame


def shard(
    n: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1
) -> DistributedSampler:
    """This rank's share of 0..n-1: shuffled each epoch in equal shares for training, each
    once for evaluation (torch's sampler repeats some). Rank and world are given:
    torch.distributed is not set up when the recipe counts the batches."""
    if shuffle:
        return DistributedSampler(range(n), world_size, rank, seed=seed, drop_last=True)
    return UnrepeatedDistributedSampler(range(n), world_size, rank, shuffle=False)
