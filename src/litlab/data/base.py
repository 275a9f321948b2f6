"""What every in-memory data module shares: three splits of tensors and their loaders, and
reading rows to predict. Predict also asks for `inputs(frame)`, and the recipe, where a data
module has them, for `module_kwargs()`, `report(run_dir)`, `baselines()` and `figures()`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor
from typing_extensions import override

from litlab.data.batches import TensorBatches

MAX_ABS_VALUE = 1e6  # a raw input past this is a unit mistake or an overflow: not predicted


def mark_short_rows(frame: pd.DataFrame, path: Path, sep: str) -> pd.DataFrame:
    """`frame` with the rows `path` gave fewer values than its header (pandas fills them)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        widths = [len(row) for row in csv.reader(handle, delimiter=sep) if row]
    frame.attrs["short_rows"] = {i: n for i, n in enumerate(widths[1:]) if n < widths[0]}
    return frame


def short_row_problems(frame: pd.DataFrame) -> pd.Series:
    """'' for each row, or 'short row' for one `mark_short_rows` marked."""
    problems = pd.Series("", index=frame.index, dtype=object)
    for i, fields in frame.attrs.get("short_rows", {}).items():
        if i < len(frame):
            problems.iloc[i] = f"short row: {fields} of {frame.shape[1]} values"
    return problems


def add_problem(problems: pd.Series, where: pd.Series, why: pd.Series) -> pd.Series:
    """`why` added to the problems of the rows `where`."""
    return problems.where(~where, problems.where(problems == "", problems + "; ") + why)


def contract_errors(datamodule: L.LightningDataModule) -> list[str]:
    """What the recipe asks of a set-up data module and this one lacks."""
    return [name for name in ("task", "num_features") if not hasattr(datamodule, name)] + [
        f"{split}_dataloader()"
        for split in ("train", "test")
        if not is_overridden(f"{split}_dataloader", datamodule, L.LightningDataModule)
    ]


def tensors(datamodule: L.LightningDataModule, split: str) -> tuple[Tensor, ...] | None:
    """A split's (x, y) tensors; None for a data module with loaders only."""
    return getattr(datamodule, split) if isinstance(datamodule, TensorDataModule) else None


class TensorDataModule(L.LightningDataModule):
    """`train`, `val`, `test` as (x, y) tensors, filled by the subclass's `setup`, in
    batches of `batch_size` per device (None: full batch); evaluation in one batch a rank."""

    task: str  # binary, multiclass or regression: the LightningModule must match it
    num_features: int  # the network's inputs
    num_outputs = 1  # the network's outputs: one logit or value; a logit per class
    input_columns: list[str]  # the columns of a raw row (predict's input)
    module_target: str | None = None  # the LightningModule that fits it (module=auto)

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
        # full batch needs no shuffling, overfit_batches the same batches every epoch
        fixed = self.batch_size is None or (trainer is not None and trainer.overfit_batches > 0)
        epoch = (lambda: trainer.current_epoch) if trainer is not None else (lambda: 0)
        seed = None if fixed else self.seed
        self.training_batches = TensorBatches(tensors, self.batch_size, seed, epoch, rank, world)
        return self.training_batches

    def train_dataloader(self) -> TensorBatches:
        return self._batches(self.train, train=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches(self.val, train=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches(self.test, train=False)

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count each training batch as it enters its step, for a mid-epoch resume."""
        if self.trainer is not None and self.trainer.training and self.training_batches is not None:
            self.training_batches.count_trained()
        return batch

    def read_rows(self, path: Path) -> pd.DataFrame:
        """Rows to predict, from a CSV file (short rows marked)."""
        return mark_short_rows(pd.read_csv(path), path, ",")

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
        """Why each row cannot be predicted ('' when it can), and what was filled in."""
        problems = short_row_problems(frame)
        for column in self.input_columns:
            bad = ~(pd.to_numeric(frame[column], errors="coerce").abs() <= MAX_ABS_VALUE)
            why = frame[column].map(lambda v, c=column: f"{c}={v} is not a finite number")
            problems = add_problem(problems, bad, why)
        return problems, []

    def decode(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Prediction columns as the data names them (class indices as class names)."""
        return columns

    def verify(self, state: dict[str, Any]) -> None:
        """Raise a ValueError if this is not the data the checkpoint's `state` came from."""
