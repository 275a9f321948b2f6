"""Images of one's own, decoded by Pillow item by item in the loader's workers: only the
paths are held, so memory does not grow with the number of images. torchvision's
ImageFolder would do the reading, but PyPI's build fails to import beside the CPU torch."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

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
from litlab.data.image_files import SPLITS, ImageFiles, Item, decode, find, probe, shard, to_predict
from litlab.data.split import check_split
from litlab.distributed import is_rank_zero
from litlab.errors import DataError
from litlab.signatures import AtLeast, Positive

SHOWN = 10  # skipped files named in the printed report (all of them are in data.json)
OUTSIDE = "a link or path to outside the folder given, not read"  # a file predict refuses
STATE = ("classes", "mean", "std", "channels", "image_size", "fingerprint")  # in checkpoints


class ImagesDataModule(L.LightningDataModule):
    """Classification of a folder of class sub-folders (or a CSV of paths and labels).
    Batches reach the device as uint8; there they are augmented and normalised."""

    module_target = "litlab.module.ClassifierModule"
    input_columns = ("path",)
    probabilities_per_class = True  # predict writes a probability column for each class

    def __init__(
        self,
        path: str,
        image_column: str = "path",
        target: str = "label",
        image_size: int = 64,
        channels: Literal[1, 3] = 3,
        num_workers: Annotated[int, AtLeast(0)] | None = None,
        augment: dict[str, Any] | None = None,
        batch_size: Positive = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        random_state: int = 0,
    ):
        super().__init__()
        _check_shape(channels, image_size)
        self.path = Path(path).expanduser()
        self.image_column, self.target = image_column, target
        self.image_size, self.channels, self.batch_size = image_size, channels, batch_size
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.augment = Augment.from_config(augment)
        self.fractions, self.seed = {"val": val_fraction, "test": test_fraction}, random_state
        self.classes: list[str] = []
        self.mean, self.std = [0.0] * channels, [1.0] * channels
        self.fingerprint = ""
        self.sets: dict[str, ImageFiles] = {}
        self.skipped: list[dict[str, str]] = []
        self.lines: list[str] = []
        self._batches = (-1, 0)  # (epoch, training batches augmented in it): seeds the draws

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
        items, self.skipped, layout = find(self.path, self.image_column, self.target)
        usable, sums = self._probe(items)
        if not usable:
            reasons = Counter(s["why"].split(" (")[0] for s in self.skipped).most_common(3)
            said = "; ".join(f"{n} {why}" for why, n in reasons) or "no files"
            raise DataError(
                f"{self.path}: no usable image ({len(items)} image files tried; {said}); give "
                "a folder of <class>/<image> files (.png, .jpg, ...) or a CSV of paths and labels"
            )
        self.classes = class_names(pd.Series([item.label for item in usable]))
        if len(self.classes) < 2:
            raise DataError(
                f"{self.path}: one class ({self.classes[0]!r}); classification needs images of "
                "two classes or more, a sub-folder (or a label) each"
            )
        parts = self._split(usable)
        pixels = len(parts["train"]) * self.image_size**2
        mean, square = np.sum([sums[id(i)] for i in parts["train"]], axis=0) / pixels  # (C,)
        std = np.sqrt(np.maximum(square - mean**2, 0))
        self.mean, self.std = mean.tolist(), [float(v) if v > 0 else 1.0 for v in std]
        self.sets = {
            split: ImageFiles(chosen, self.classes, self.channels, self.image_size)
            for split, chosen in parts.items()
        }
        self.fingerprint = _fingerprint(parts, self.path)
        counts = Counter(item.label for item in usable)
        size = self.image_size
        self.lines = [
            f"images: {len(usable)} of {len(usable) + len(self.skipped)} files in {self.path} "
            f"({layout}), {self.channels} channel(s), {size}x{size}",
            "classes: " + ", ".join(f"{name} {counts[name]}" for name in self.classes),
            "split: " + ", ".join(f"{p} {len(parts[p])}" for p in SPLITS),
            f"normalisation (training images): mean {[round(v, 4) for v in self.mean]}, "
            f"std {[round(v, 4) for v in self.std]}",
        ]
        if self.skipped:
            self.lines.append(f"skipped {len(self.skipped)} files:")
            self.lines += [f"  {s['path']}: {s['why']}" for s in self.skipped[:SHOWN]]
        if len(self.skipped) > SHOWN:
            self.lines.append(f"  ... and {len(self.skipped) - SHOWN} more: see data.json")

    def _probe(self, items: list[Item]) -> tuple[list[Item], dict[int, np.ndarray]]:
        """The items that decode, and their pixel sums by id; the others join `skipped`."""
        paths = np.asarray([str(item.path) for item in items], dtype=np.str_)
        collate = partial(probe, channels=self.channels, size=self.image_size)
        loader = DataLoader(paths, batch_size=64, num_workers=self.num_workers, collate_fn=collate)
        usable, sums = [], {}
        for item, (why, sum_) in zip(items, (r for batch in loader for r in batch), strict=True):
            if why:
                self.skipped.append({"path": str(item.path), "why": why})
            else:
                usable.append(item)
                sums[id(item)] = sum_
        self.skipped.sort(key=lambda s: s["path"])
        return usable, sums

    def _split(self, usable: list[Item]) -> dict[str, list[Item]]:
        """The split folders, a missing one split off train/ as split_rows splits the rest."""
        given = {part: [i for i in usable if i.part == part] for part in SPLITS}
        held_out = {i.label for i in given["val"] + given["test"]}
        if extra := sorted(held_out - {i.label for i in given["train"]}):
            raise DataError(
                f"{self.path}: class {extra[0]!r} is in val/ or test/ but not in train/; every "
                "class needs training images (or put the class folders directly in data.path)"
            )
        items, missing = given["train"] or usable, [p for p in ("val", "test") if not given[p]]
        counts, least = Counter(i.label for i in items), 1 + len(missing)
        if few := [name for name in self.classes if counts[name] < least]:
            shown = ", ".join(f"{name!r} has {counts[name]}" for name in few)
            raise DataError(
                f"{self.path}: too few usable training images: class {shown}; each class needs "
                f"at least {least} (one each for train and the {len(missing)} split off it): "
                "add images, or remove the class"
            )
        if len(missing) == 2:
            check_split(len(items), *self.fractions.values(), None, classes=len(self.classes))
        labels = np.asarray([self.classes.index(i.label) for i in items])
        rest = np.arange(len(items))
        for part in reversed(missing):  # test first, then val from the rest: as split_rows
            share = self.fractions[part] * len(items) / len(rest)
            rest, chosen = train_test_split(
                rest, test_size=share, stratify=labels[rest], random_state=self.seed
            )
            given[part] = [items[i] for i in chosen]
        return given | {"train": [items[i] for i in rest]}

    def report(self, run_dir: Path) -> None:
        """Print what was found; save it, every skipped file named, in the run's data.json."""
        if not is_rank_zero():
            return
        print(*self.lines, sep="\n")
        data = self.state_dict() | {"notes": self.lines, "skipped": self.skipped}
        write_text(run_dir / "data.json", json.dumps(data, indent=2))

    def baselines(self) -> dict[str, float]:
        """The most frequent training class: an SVM on pixels would need every image at once."""
        majority = {"majority": DummyClassifier(strategy="most_frequent")}
        train, test = (torch.from_numpy(self.sets[s].labels) for s in ("train", "test"))
        no_inputs = (torch.zeros(len(train), 1), train), (torch.zeros(len(test), 1), test)
        score = binary_scores if self.task == "binary" else multiclass_scores
        return fit_and_score(majority, *no_inputs, score)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        return DataLoader(
            self.sets[split],
            batch_size=self.batch_size,
            sampler=shard(len(self.sets[split]), self.seed, shuffle, rank, world),
            # workers' seeds from the global generator would shift dropout's draws on resume
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            pin_memory=trainer is not None and trainer.strategy.root_device.type == "cuda",
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
        """uint8 to [0, 1], augmented (seeded by seed, epoch and batch), normalised."""
        x, y = batch
        x = x.float() / 255
        trainer = self.trainer
        if self.augment.active and trainer is not None and trainer.training:
            epoch, (last, n) = trainer.current_epoch, self._batches
            self._batches = (epoch, n + 1 if epoch == last else 0)
            seed = (self.seed * 1_000_003 + epoch) * 1_000_003 + self._batches[1]
            x = self.augment(x, torch.Generator(x.device).manual_seed(seed % 2**63))
        return self.normalise(x), y

    def normalise(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] standardised per channel by the training images."""
        mean, std = (x.new_tensor(v).view(1, -1, 1, 1) for v in (self.mean, self.std))
        return (x - mean) / std

    @override
    def state_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in STATE}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A checkpoint's state, checked: it must not size a network training would refuse."""
        state = {key: state_dict[key] for key in STATE}
        _check_shape(state["channels"], state["image_size"])
        classes, mean, std = (list(state[k]) for k in ("classes", "mean", "std"))
        if len(set(classes)) < max(2, len(classes)) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"classes: {len(classes)} given; two or more different names (text)")
        fits = len(mean) == len(std) == state["channels"]
        if not fits or not np.isfinite(np.asarray(mean + std, dtype=float)).all() or min(std) <= 0:
            raise ValueError(f"mean, std: {state['channels']} finite numbers each, std > 0")
        for key, value in (state | {"classes": classes, "mean": mean, "std": std}).items():
            setattr(self, key, value)

    def verify(self, state: dict[str, Any]) -> None:
        """Refuse images other than the checkpoint's; take its normalisation."""
        if (stored := state.get("fingerprint")) and stored != self.fingerprint:
            raise ValueError(
                f"the images changed since training (fingerprint {self.fingerprint}, the "
                f"checkpoint's {stored}): its test split would differ; restore them or train again"
            )
        self.mean, self.std = list(state["mean"]), list(state["std"])

    def read_rows(self, path: Path) -> pd.DataFrame:
        return to_predict(path, self.image_column)

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
        """Why each file cannot be predicted: it leads out of the folder, or does not decode."""
        outside = frame.attrs.get("outside", [False] * len(frame))
        problems = [
            OUTSIDE if out else probe([p], self.channels, self.image_size)[0][0]
            for p, out in zip(frame["path"], outside, strict=True)
        ]
        return pd.Series(problems, index=frame.index, dtype=object), []

    def inputs(self, frame: pd.DataFrame) -> Tensor:
        """Normalised images (N, C, H, W) of the files of `frame`'s path column."""
        pixels = np.stack([decode(p, self.channels, self.image_size) for p in frame["path"]])
        return self.normalise(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)

    def decode(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Class indices as class names; each class's probability named by the class."""
        names = np.asarray(self.classes, dtype=object)
        out = columns | {"prediction": names[columns["prediction"].astype(int)]}
        if (probabilities := out.pop("probabilities", None)) is not None:
            out |= {f"probability {n}": probabilities[:, i] for i, n in enumerate(self.classes)}
        return out


def _check_shape(channels: int, image_size: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}: must be 1 (grey) or 3 (RGB)")
    if not 4 <= image_size <= 1024:
        raise ValueError(f"image_size={image_size}: must be 4 to 1024 pixels")


def default_workers() -> int:
    """One loader worker per core this process may use, less one, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(4, (cores or 1) - 1))


def _fingerprint(parts: dict[str, list[Item]], path: Path) -> str:
    """A hash of each split's files: path under the data's folder, class and size."""
    digest, root = hashlib.sha256(), path if path.is_dir() else path.parent.resolve()
    for part in SPLITS:
        for item in parts[part]:
            name = item.path.relative_to(root) if item.path.is_relative_to(root) else item.path
            size = item.path.stat().st_size
            digest.update(f"{part}\x1f{name}\x1f{item.label}\x1f{size}\n".encode())
    return digest.hexdigest()[:16]
