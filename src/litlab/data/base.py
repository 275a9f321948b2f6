"""What every in-memory data module shares: three splits of tensors and their loaders."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor
from typing_extensions import override

from litlab.data.batches import TensorBatches


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
        if trainer is None:
            return TensorBatches(tensors, self.batch_size, seed, rank=rank, world_size=world)

        def trained() -> int:  # this epoch's batches, or 0 once it is done (however short)
            progress = trainer.fit_loop.epoch_loop.batch_progress
            return 0 if progress.is_last_batch else progress.current.processed

        return TensorBatches(
            tensors, self.batch_size, seed, lambda: trainer.current_epoch, rank, world, trained
        )

    num_outputs = 1  # the network's outputs: one logit or value; a logit per class

    def module_kwargs(self) -> dict[str, float]:
        """What the LightningModule needs to know of this data, beyond the batches."""
        return {}

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
