"""What every in-memory data module shares: three splits of tensors and their loaders,
and what generic code asks of each task's data: its baselines, its pictures, and how
raw rows become model inputs (for predict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor
from typing_extensions import override

from litlab.data.batches import TensorBatches

# A raw input past this size is a unit mistake or an overflow (1e308): refused by predict.
MAX_ABS_VALUE = 1e6


def short_row_problems(frame: pd.DataFrame) -> pd.Series:
    """'' for each row, or 'short row' for one the file gave fewer values than its header
    (read_rows marks them in frame.attrs): pandas fills their gaps as missing values."""
    problems = pd.Series("", index=frame.index, dtype=object)
    width = frame.shape[1]
    for position, fields in frame.attrs.get("short_rows", {}).items():
        if position < len(frame):
            problems.iloc[position] = f"short row: {fields} of {width} values"
    return problems


TASKS = ("binary", "multiclass", "regression")


def contract_errors(datamodule: L.LightningDataModule) -> list[str]:
    """What the recipe asks of a data module once it is set up, and this one lacks: its
    task (which picks the loss), its sizes (which size the network), and its splits."""
    missing = [name for name in ("task", "num_features") if not hasattr(datamodule, name)]
    if hasattr(datamodule, "task") and datamodule.task not in TASKS:
        missing.append(f"task one of {', '.join(TASKS)} (not {datamodule.task!r})")
    if not isinstance(datamodule, TensorDataModule):  # its own loaders, then
        base = L.LightningDataModule
        missing += [
            f"{split}_dataloader()"
            for split in ("train", "test")
            if getattr(type(datamodule), f"{split}_dataloader")
            is getattr(base, f"{split}_dataloader")
        ]
    return missing


def tensors(datamodule: L.LightningDataModule, split: str) -> tuple[Tensor, ...] | None:
    """A split's tensors (x, y), or None for a data module that only has loaders: the
    pictures that need them are then left out."""
    found = getattr(datamodule, split, None)
    if isinstance(found, tuple) and len(found) == 2 and all(isinstance(t, Tensor) for t in found):
        return found
    return None


class TensorDataModule(L.LightningDataModule):
    """Holds `train`, `val`, `test` as tuples of tensors, filled by the subclass's `setup`.

    `batch_size` is per device: `None` means full-batch gradient descent (each rank takes
    its whole shard), 1 stochastic and anything between mini-batch gradient descent.
    Evaluation always runs in one batch per rank: these sets are small.
    """

    def __init__(self, batch_size: int | None, seed: int):
        super().__init__()
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1, or null for full batch")
        self.batch_size, self.seed = batch_size, seed
        self.train: tuple[Tensor, ...] = ()
        self.val: tuple[Tensor, ...] = ()
        self.test: tuple[Tensor, ...] = ()
        self.training_batches: TensorBatches | None = None

    def _batches(self, tensors: tuple[Tensor, ...], train: bool) -> TensorBatches:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        if trainer is not None:  # once per fit, so no batch is copied to the device per step
            tensors = tuple(t.to(trainer.strategy.root_device) for t in tensors)
        if not train:
            return TensorBatches(tensors, None, rank=rank, world_size=world)
        # Full-batch training needs no shuffling: every step sees every row. Overfitting
        # a few batches (a debug check) needs the same batches every epoch.
        fixed = self.batch_size is None or (trainer is not None and trainer.overfit_batches > 0)
        seed = None if fixed else self.seed
        epoch = (lambda: trainer.current_epoch) if trainer is not None else (lambda: 0)
        self.training_batches = TensorBatches(tensors, self.batch_size, seed, epoch, rank, world)
        return self.training_batches

    task: str  # binary, multiclass or regression: the LightningModule must match it
    num_features: int  # the network's inputs
    num_outputs = 1  # the network's outputs: one logit or value; a logit per class
    input_columns: list[str]  # the columns of a raw row (predict's input)

    def module_kwargs(self) -> dict[str, Any]:
        """What the LightningModule needs to know of this data, beyond the batches."""
        return {}

    def inputs(self, frame: pd.DataFrame) -> Tensor:
        """Model inputs for the raw rows of `frame` (its `input_columns`)."""
        raise NotImplementedError

    module_target: str | None = None  # the LightningModule that fits it (module=auto)

    def read_rows(self, path: Path) -> pd.DataFrame:
        """New rows to predict, from a file: a CSV table (short rows marked)."""
        from litlab.data.columns import short_rows

        frame = pd.read_csv(path)
        frame.attrs["short_rows"] = short_rows(path, ",")
        return frame

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
        """Why each row of `frame` cannot be predicted ('' when it can), and notes on
        what was filled in to predict the others. Here every input is a number: text,
        a missing value, infinity or a value past MAX_ABS_VALUE is refused."""
        problems = short_row_problems(frame)
        for column in self.input_columns:
            values = frame[column]
            numbers = pd.to_numeric(values, errors="coerce")
            bad = ~(numbers.abs() <= MAX_ABS_VALUE)
            why = values.map(lambda v, c=column: f"{c}={v} is not a finite number")
            problems = problems.where(~bad, problems.where(problems == "", problems + "; ") + why)
        return problems, []

    def decode(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Prediction columns as the data names them (class indices as class names)."""
        return columns

    def verify(self, state: dict[str, Any]) -> None:
        """Raise a ValueError if this is not the data the checkpoint's `state` came from."""

    def report(self, run_dir: Path) -> None:
        """Say what the data became, at the start of a run; nothing unless it has more to
        say than its config."""

    def baselines(self) -> dict[str, float]:
        """Test metrics of scikit-learn models on the same split, as
        `baseline/<model>/<metric>`; none unless the data module names some."""
        return {}

    def figures(self) -> dict[str, Figure]:
        """Pictures of the data, drawn before training; none unless it has some."""
        return {}

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count each training batch as it enters its step: a checkpoint saved mid-epoch
        then knows where a resumed run goes on (Lightning's public hook for it)."""
        if self.trainer is not None and self.trainer.training and self.training_batches is not None:
            self.training_batches.count_trained()
        return batch

    @override
    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        if all(isinstance(t, Tensor) and t.device == device for t in batch):
            return batch  # sliced from tensors already there
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self) -> TensorBatches:
        return self._batches(self.train, train=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches(self.val, train=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches(self.test, train=False)
