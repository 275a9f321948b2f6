"""Images of one's own: a folder of class sub-folders, or a CSV of file paths and labels.

Decoded by Pillow from disk, item by item in the DataLoader's workers; only the list of
paths is held, so memory does not grow with the number of images. torchvision's
ImageFolder would do the reading, but torchvision is an optional package here (PyPI's
CUDA build fails to import beside a CPU torch), so the core image path needs only Pillow.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader
from typing_extensions import override

from litlab.baselines import binary_scores, fit_and_score, multiclass_scores
from litlab.checkpoints import write_text
from litlab.data.augment import Augment
from litlab.data.columns import class_names
from litlab.data.image_files import (
    SPLITS,
    ImageFiles,
    Item,
    Probe,
    Shard,
    decode,
    inside,
    read_list,
    scan_folder,
    walk,
    why_not,
)
from litlab.data.split import check_split, split_rows
from litlab.distributed import is_rank_zero
from litlab.errors import ConfigError, DataError

SHOWN = 10  # skipped files named in the printed report (all of them are in data.json)


class ImagesDataModule(L.LightningDataModule):
    """Classification of one's own images (`data.path`): a folder of class sub-folders
    (with train/, val/, test/ inside, used as the splits), or a CSV of file paths and
    labels. Each image is decoded per item from disk, made `channels` (1 or 3) channels
    and `image_size` square; batches go to the device as uint8 and become floats there,
    augmented (training batches only, `augment`) and normalised by the per-channel mean
    and standard deviation of the training images. The class names and that normalisation
    are saved in every checkpoint, so eval and predict read images as training did.
    A file that cannot be used is skipped and named in the run's report (data.json)."""

    module_target = "litlab.module.ClassifierModule"

    def __init__(
        self,
        path: str,
        image_column: str = "path",
        target: str = "label",
        image_size: int = 64,
        channels: Literal[1, 3] = 3,
        num_workers: int | None = None,
        augment: dict[str, Any] | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        random_state: int = 0,
    ):
        super().__init__()
        _check_shape(channels, image_size)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        if num_workers is not None and num_workers < 0:
            raise ValueError(f"num_workers={num_workers}: must be >= 0, or null for the default")
        self.path = Path(path).expanduser()
        self.image_column, self.target = image_column, target
        self.image_size, self.channels, self.batch_size = image_size, channels, batch_size
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.augment = Augment.from_config(augment)
        self.split = dict(val_fraction=val_fraction, test_fraction=test_fraction, seed=random_state)
        self.seed = random_state
        self.classes: list[str] = []
        self.mean, self.std = [0.0] * channels, [1.0] * channels
        self.fingerprint = ""
        self.sets: dict[str, ImageFiles] = {}
        self.skipped: list[dict[str, str]] = []
        self.lines: list[str] = []
        self._batches = (-1, 0)  # (epoch, training batches augmented in it): seeds the draws

    # what the recipe asks of a data module
    @property
    def task(self) -> str:
        return "binary" if len(self.classes) == 2 else "multiclass"

    @property
    def num_features(self) -> int:
        return self.channels * self.image_size * self.image_size

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "binary" else len(self.classes)

    def module_kwargs(self) -> dict[str, Any]:
        return {"num_classes": len(self.classes)}

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        items, self.skipped, layout = self._find()
        usable, sums = self._probe(items)
        self.skipped.sort(key=lambda s: s["path"])
        if not usable:
            raise DataError(_nothing_usable(self.path, len(items), self.skipped))
        self.classes = _classes(usable)
        _check_counts(usable, self.classes, self.path)
        parts = self._split(usable)
        train_sums = np.sum([sums[id(item)] for item in parts["train"]], axis=0)  # (2, C)
        pixels = len(parts["train"]) * self.image_size**2
        mean = train_sums[0] / pixels
        std = np.sqrt(np.maximum(train_sums[1] / pixels - mean**2, 0))
        self.mean = [float(v) for v in mean]
        self.std = [float(v) if v > 0 else 1.0 for v in std]  # a constant channel: unscaled
        index = {name: i for i, name in enumerate(self.classes)}
        binary = len(self.classes) == 2
        self.sets = {
            split: ImageFiles(
                [str(item.path) for item in chosen],
                [index[item.label] for item in chosen],
                self.channels,
                self.image_size,
                binary,
            )
            for split, chosen in parts.items()
        }
        root = self.path if self.path.is_dir() else self.path.parent.resolve()
        self.fingerprint = _fingerprint(parts, root)
        self.lines = self._describe(usable, parts, layout)

    def _find(self) -> tuple[list[Item], list[dict[str, str]], str]:
        if self.path.is_dir():
            return scan_folder(self.path)
        if self.path.suffix.lower() == ".csv" and self.path.is_file():
            items, skipped = read_list(self.path, self.image_column, self.target)
            return items, skipped, "a CSV of paths, split stratified"
        raise ValueError(
            f"path={str(self.path)!r}: no such folder or CSV file; give data.path=<a folder "
            "of class sub-folders of images, or a CSV of image paths and labels>"
        )

    def _probe(self, items: list[Item]) -> tuple[list[Item], dict[int, np.ndarray]]:
        """The items that decode, and their pixel sums; the others join `skipped`."""
        probe = Probe([str(item.path) for item in items], self.channels, self.image_size)
        loader = DataLoader(probe, batch_size=64, num_workers=self.num_workers, collate_fn=list)
        results = [result for batch in loader for result in batch]
        usable, sums = [], {}
        for item, (why, sum_) in zip(items, results, strict=True):
            if why:
                self.skipped.append({"path": str(item.path), "why": why})
            else:
                usable.append(item)
                sums[id(item)] = sum_
        return usable, sums

    def _split(self, usable: list[Item]) -> dict[str, list[Item]]:
        """train/val/test: the split folders where there are (a missing val/ or test/ is
        split off train/ by its fraction), else a seeded stratified split."""
        given = {part: [i for i in usable if i.part == part] for part in SPLITS}
        if not given["train"]:
            if any(given.values()):
                raise DataError(
                    f"{self.path}: has val/ or test/ but no train/ images; "
                    "give train/ too, or put the class folders directly in data.path"
                )
            return self._stratified(usable)
        trained = {i.label for i in given["train"]}
        extra = sorted({i.label for i in given["val"] + given["test"]} - trained)
        if extra:
            raise DataError(
                f"{self.path}: class {extra[0]!r} is in val/ or test/ but not in "
                "train/; every class needs training images"
            )
        missing = [p for p in ("val", "test") if not given[p]]
        if missing:
            rest = self._stratified(given["train"], only=missing)
            given = {p: rest[p] if p in rest else given[p] for p in SPLITS}
        return given

    def _stratified(
        self, items: list[Item], only: list[str] | None = None
    ) -> dict[str, list[Item]]:
        """A seeded split stratified by class, as the tables' (split.py); `only` names
        the parts to split off (val, test, or both)."""
        labels = np.asarray([self.classes.index(i.label) for i in items])
        fractions = self.split["val_fraction"], self.split["test_fraction"]
        if only is None or len(only) == 2:
            check_split(len(items), *fractions, None, classes=len(self.classes))
            rows = split_rows(len(items), **self.split, labels=labels)
            return {part: [items[i] for i in r] for part, r in zip(SPLITS, rows, strict=True)}
        (part,) = only
        fraction = self.split[f"{part}_fraction"]
        rest, taken = train_test_split(
            np.arange(len(items)), test_size=fraction, stratify=labels, random_state=self.seed
        )
        return {"train": [items[i] for i in rest], part: [items[i] for i in taken]}

    def _describe(self, usable: list[Item], parts: dict[str, list[Item]], layout: str) -> list[str]:
        counts = Counter(item.label for item in usable)
        balance = ", ".join(f"{name} {counts[name]}" for name in self.classes)
        found = len(usable) + len(self.skipped)
        lines = [
            f"images: {len(usable)} of {found} files in {self.path} ({layout}), "
            f"{self.channels} channel(s), {self.image_size}x{self.image_size}",
            f"classes: {balance}",
            "split: " + ", ".join(f"{p} {len(parts[p])}" for p in SPLITS),
            f"normalisation (training images): mean {_rounded(self.mean)}, "
            f"std {_rounded(self.std)}",
        ]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} files:")
            lines += [f"  {s['path']}: {s['why']}" for s in self.skipped[:SHOWN]]
            if len(self.skipped) > SHOWN:
                lines.append(f"  ... and {len(self.skipped) - SHOWN} more: see data.json")
        return lines

    def report(self, run_dir: Path) -> None:
        """Print what was found, split and skipped; save it, every skipped file named,
        in the run folder's data.json (never beside the images)."""
        if not is_rank_zero():
            return
        print(*self.lines, sep="\n")
        data = self.state_dict() | {"notes": self.lines, "skipped": self.skipped}
        write_text(run_dir / "data.json", json.dumps(data, indent=2))

    def baselines(self) -> dict[str, float]:
        """Always the most frequent training class (scikit-learn's DummyClassifier): the
        score of ignoring the images. The fitted baselines of the in-memory tasks (an
        SVM on pixels) would need every image decoded at once, so they are left out."""
        majority = {"majority": DummyClassifier(strategy="most_frequent")}
        train, test = (torch.from_numpy(self.sets[s].labels) for s in ("train", "test"))
        no_inputs = (torch.zeros(len(train), 1), train), (torch.zeros(len(test), 1), test)
        score = binary_scores if self.task == "binary" else multiclass_scores
        return fit_and_score(majority, *no_inputs, score)

    # batches
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        on_gpu = trainer is not None and trainer.strategy.root_device.type == "cuda"
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        files = self.sets[split]
        return DataLoader(
            files,
            batch_size=self.batch_size,
            sampler=Shard(len(files), self.seed, shuffle, rank, world),
            # Each new iterator draws its workers' base seed from this generator; from the
            # global one it would shift dropout's draws by one per loader made (a resumed
            # run makes other loaders than an uninterrupted one)
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            pin_memory=on_gpu,  # pinned pages copy to a GPU without a staging copy
            persistent_workers=self.num_workers > 0,  # no new workers every epoch
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: uint8 to [0, 1], augmented when training, then normalised."""
        x, y = batch
        x = x.float() / 255
        trainer = self.trainer
        if self.augment.active and trainer is not None and trainer.training:
            x = self.augment(x, self._generator(trainer.current_epoch, x.device))
        return self.normalise(x), y

    def _generator(self, epoch: int, device: torch.device) -> torch.Generator:
        """A generator for this training batch, seeded by the seed, the epoch and the
        batch's place in it: the same run augments the same images the same way."""
        last_epoch, n = self._batches
        n = n + 1 if epoch == last_epoch else 0
        self._batches = (epoch, n)
        seed = (self.seed * 1_000_003 + epoch) * 1_000_003 + n
        return torch.Generator(device).manual_seed(seed % 2**63)

    def normalise(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] standardised per channel by the training images."""
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype)[None, :, None, None]
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype)[None, :, None, None]
        return (x - mean) / std

    # checkpoints
    @override
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: predict reads new images with the same classes,
        size, channels and normalisation."""
        return {
            "classes": self.classes,
            "mean": self.mean,
            "std": self.std,
            "channels": self.channels,
            "image_size": self.image_size,
            "fingerprint": self.fingerprint,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A checkpoint's state, checked as the constructor checks the config: a file of
        someone else's must not size the network or the decoding beyond what training
        allows, nor normalise with numbers that do not fit the channels."""
        classes, mean, std = (list(state_dict[k]) for k in ("classes", "mean", "std"))
        channels, size = state_dict["channels"], state_dict["image_size"]
        _check_shape(channels, size)
        if len(classes) < 2 or len(set(classes)) < len(classes):
            raise ValueError(f"classes: {len(classes)} given; two or more different names")
        if not all(isinstance(name, str) for name in classes):
            raise ValueError("classes: every class name must be text")
        fits = len(mean) == len(std) == channels
        if not fits or not np.isfinite(np.asarray(mean + std, dtype=float)).all() or min(std) <= 0:
            raise ValueError(f"mean, std: {channels} finite numbers each, std > 0")
        self.classes, self.mean, self.std = classes, mean, std
        self.channels, self.image_size = channels, size
        self.fingerprint = state_dict.get("fingerprint", "")

    def verify(self, state: dict[str, Any]) -> None:
        """Refuse images that are not the ones the checkpoint was trained on; take its
        normalisation (the same numbers, unless the files' pixels changed in place)."""
        stored = state.get("fingerprint")
        if stored and stored != self.fingerprint:
            raise ValueError(
                f"the images changed since training (fingerprint {self.fingerprint}, the "
                f"checkpoint's {stored}): its test split would differ; restore them or train again"
            )
        self.mean, self.std = list(state["mean"]), list(state["std"])

    # predict
    input_columns = ("path",)

    def read_rows(self, path: Path) -> pd.DataFrame:
        """Images to predict, a row each: every file under a folder (recursively,
        sorted), one image, or a CSV whose `image_column` holds paths relative to its
        folder (its other columns are kept). A link, or a CSV path, leading out of that
        folder is a row with a problem, not read."""
        if path.is_dir():
            files = [str(p) for p in sorted(walk(path))]
            frame = pd.DataFrame({"path": files})
            root = path.resolve()
        elif path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            if self.image_column not in table.columns:
                raise ConfigError(
                    [f"{path}: no column {self.image_column!r} of image paths (data.image_column)"]
                )
            files = [str(path.parent / name) for name in table[self.image_column]]
            rest = table.drop(columns=[self.image_column, "path"], errors="ignore")
            frame = pd.concat([pd.DataFrame({"path": files}), rest], axis=1)
            root = path.parent.resolve()
        elif path.is_file():
            return pd.DataFrame({"path": [str(path)]})
        else:
            raise ConfigError([f"{path}: no such file or folder; give images, a folder or a CSV"])
        frame.attrs["outside"] = [not inside(Path(p), root) for p in files]
        return frame

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
        """Why each file cannot be predicted ('' when it can): it leads out of the folder
        given, or Pillow cannot decode it."""
        outside = frame.attrs.get("outside", [False] * len(frame))
        problems = [
            "a link or path to outside the folder given, not read"
            if out
            else why_not(p, self.channels, self.image_size)
            for p, out in zip(frame["path"], outside, strict=True)
        ]
        return pd.Series(problems, index=frame.index, dtype=object), []

    def inputs(self, frame: pd.DataFrame) -> Tensor:
        """Normalised images (N, C, H, W) for the files of `frame`'s path column."""
        pixels = np.stack([decode(p, self.channels, self.image_size) for p in frame["path"]])
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
        return self.normalise(x)

    probabilities_per_class = True  # predict writes a probability column for each class

    def decode(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Class indices as class names; each class's probability named by the class."""
        names = np.asarray(self.classes, dtype=object)
        out = {"prediction": names[columns["prediction"].astype(int)]}
        out |= {k: v for k, v in columns.items() if k not in ("prediction", "probabilities")}
        if "probabilities" in columns:
            probabilities = columns["probabilities"]
            out |= {
                f"probability {name}": probabilities[:, i] for i, name in enumerate(self.classes)
            }
        return out


def _check_shape(channels: int, image_size: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}: must be 1 (grey) or 3 (RGB)")
    if not 4 <= image_size <= 1024:
        raise ValueError(f"image_size={image_size}: must be 4 to 1024 pixels")


def default_workers() -> int:
    """Loader workers: one per core this process may use, less one for the training
    loop, at most 4 (more rarely pays for small images)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(4, (cores or 1) - 1))


def _classes(usable: list[Item]) -> list[str]:
    """Class names in order: folder names sorted; a CSV's labels as the tables sort them."""
    return class_names(pd.Series([item.label for item in usable]))


def _check_counts(usable: list[Item], classes: list[str], path: Path) -> None:
    """A class with too few usable images to split is an error naming it: each class
    needs an image in train and in each part split off it (val, test, or both)."""
    if len(classes) < 2:
        raise DataError(
            f"{path}: one class ({classes[0]!r}); classification needs images of "
            "two classes or more, a sub-folder (or a label) each"
        )
    parts = {item.part for item in usable}
    split_off = 2 if "" in parts else sum(p not in parts for p in ("val", "test"))
    least = 1 + split_off
    counts = Counter(item.label for item in usable if item.part in ("", "train"))
    few = [name for name in classes if counts[name] < least]
    if few:
        shown = ", ".join(f"{name!r} has {counts[name]}" for name in few)
        where = "" if split_off == 0 else f" (one each for train and the {split_off} split off it)"
        raise DataError(
            f"{path}: too few usable training images: class {shown}; each "
            f"class needs at least {least}{where}: add images, or remove the class"
        )


def _nothing_usable(path: Path, tried: int, skipped: list[dict[str, str]]) -> str:
    reasons = Counter(s["why"].split(" (")[0] for s in skipped)
    said = "; ".join(f"{n} {why}" for why, n in reasons.most_common(3)) or "no files"
    return (
        f"{path}: no usable image ({tried} image files tried; {said}); give a "
        "folder of <class>/<image> files (.png, .jpg, ...) or a CSV of paths and labels"
    )


def _fingerprint(parts: dict[str, list[Item]], root: Path) -> str:
    """A hash of the files used in each split, in order: their path under `root`, class
    and size (a folder moved elsewhere keeps it)."""
    digest = hashlib.sha256()
    for part in SPLITS:
        for item in parts[part]:
            name = item.path.relative_to(root) if item.path.is_relative_to(root) else item.path
            size = item.path.stat().st_size
            digest.update(f"{part}\x1f{name}\x1f{item.label}\x1f{size}\n".encode())
    return digest.hexdigest()[:16]


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]
