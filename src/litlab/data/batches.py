"""Batches sliced from tensors held in memory: a DataLoader over a TensorDataset collates
one row at a time, which costs more than the model on small tables (2 ms a step on the
lesson's 500 points, seconds at 500k rows); here a batch is one index per tensor."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


class TensorBatches:
    """`tensors` in batches of `batch_size` rows (None: all), in an order seeded by
    `shuffle_seed` and `epoch()`. Under DDP each rank takes every `world_size`-th row, in
    equal shards when shuffling, none repeated otherwise. `trained` counts the batches
    trained on (not fetched: Lightning fetches ahead), kept by a mid-epoch checkpoint."""

    def __init__(
        self,
        tensors: tuple[Tensor, ...],
        batch_size: int | None,
        shuffle_seed: int | None = None,
        epoch: Callable[[], int] = lambda: 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.tensors, self.batch_size = tensors, batch_size
        self.shuffle_seed, self.epoch = shuffle_seed, epoch
        self.rank, self.world_size = rank, world_size
        self.trained, self.resume_at = 0, 0

    def count_trained(self) -> None:
        self.trained += 1

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch(), "trained": self.trained}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # saved after the epoch's last batch, Lightning starts the next epoch
        within = state["epoch"] == self.epoch() and state["trained"] < len(self)
        self.resume_at = state["trained"] if within else 0

    def _rows(self) -> int:
        n, shards = len(self.tensors[0]), self.world_size
        return n // shards if self.shuffle_seed is not None else len(range(self.rank, n, shards))

    def __len__(self) -> int:
        return 1 if self.batch_size is None else math.ceil(self._rows() / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        self.trained, self.resume_at = self.resume_at, 0  # a new epoch, or the resumed one
        index = self._index()
        if index is None and self.batch_size is None:  # full batch: the tensors, no copy
            yield self.tensors
            return
        rows = self._rows()
        step = self.batch_size or rows
        # a rank with no row takes one empty batch: every rank joins the metrics' gathering
        for start in range(self.trained * step, rows, step) if step else [0]:
            part = slice(start, start + step) if index is None else index[start : start + step]
            yield tuple(t[part] for t in self.tensors)

    def _index(self) -> Tensor | None:
        """This rank's rows in this epoch's order, on the data's device; None: all, in order."""
        n, device = len(self.tensors[0]), self.tensors[0].device
        if self.shuffle_seed is None:
            mine = slice(self.rank, None, self.world_size)
            return None if self.world_size == 1 else torch.arange(n, device=device)[mine]
        generator = torch.Generator(device).manual_seed(self.shuffle_seed * 100_003 + self.epoch())
        order = torch.randperm(n, generator=generator, device=device)
        return order[self.rank :: self.world_size][: self._rows()]
