"""Batches sliced from tensors held in memory.

A `DataLoader` over a `TensorDataset` fetches and collates one sample at a time, which
costs more than the model itself on small tabular jobs (about 2 ms per step on the
lesson's 500 points, 4 s per step at 500k rows). These sets fit in memory as a few
tensors, so a batch is one index (or slice) per tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor


class TensorBatches:
    """Iterate over `tensors` (same first dimension) in batches of `batch_size` rows.

    `batch_size=None` yields the whole set each time (full-batch gradient descent).
    With `shuffle_seed`, rows come in a new order each epoch, a permutation seeded by
    the seed and `epoch()` (the trainer's epoch, so a resumed run sees the same order).
    Under DDP each of `world_size` ranks takes every `world_size`-th row: when shuffling
    (training) the shards are cut to equal length so every rank takes the same number of
    steps; otherwise (evaluation) nothing is dropped or repeated, so metrics gathered
    over all ranks equal those of one process. The permutation is drawn on the data's
    device, so on a GPU the order differs from the CPU's (each is repeatable).

    `trained` counts the batches of this epoch that have been trained on (`count_trained`,
    called as each batch enters its step): a checkpoint saved in the middle of an epoch
    stores it (Lightning saves `state_dict` with its loops), and a run resumed from it
    starts the epoch at the next batch. Counting what was yielded would be one too many:
    Lightning fetches a batch ahead.
    """

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
        # Only a save in the middle of the epoch resumes inside it; after the last batch
        # Lightning starts the next epoch.
        within = state["epoch"] == self.epoch() and state["trained"] < len(self)
        self.resume_at = state["trained"] if within else 0

    def _rows(self) -> int:
        n = len(self.tensors[0])
        if self.world_size == 1:
            return n
        if self.shuffle_seed is not None:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        rows = self._rows()
        return 1 if self.batch_size is None else math.ceil(rows / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        self.trained, self.resume_at = self.resume_at, 0  # a new epoch, or the resumed one
        index = self._index()
        if index is None and self.batch_size is None:  # the common full-batch case: no copy
            yield self.tensors
            return
        rows = self._rows()
        step = rows if self.batch_size is None else self.batch_size
        first = self.trained * step
        # A rank with no row (more ranks than evaluation rows) still takes one, empty,
        # batch: every rank must join the gathering of metrics at the end.
        starts = range(first, rows, step) if step else range(1)
        for start in starts:
            if index is None:
                yield tuple(t[start : start + step] for t in self.tensors)
            else:
                yield tuple(t[index[start : start + step]] for t in self.tensors)

    def _index(self) -> Tensor | None:
        """Row indices of this rank in this epoch's order, made on the data's device (an
        index made on the CPU would be copied to the GPU for every batch); None means
        rows 0..n in order."""
        n, device = len(self.tensors[0]), self.tensors[0].device
        if self.shuffle_seed is None:
            if self.world_size == 1:
                return None
            return torch.arange(n, device=device)[self.rank :: self.world_size]
        generator = torch.Generator(device).manual_seed(self.shuffle_seed * 100_003 + self.epoch())
        order = torch.randperm(n, generator=generator, device=device)
        return order[self.rank :: self.world_size][: self._rows()]
