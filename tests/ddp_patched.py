"""`litlab train`, patched, run as a script: Lightning starts the other DDP processes by
running this file again, so they are patched too (a monkeypatch in the test's own
process would reach rank 0 only).

    python tests/ddp_patched.py PATCH[:ARG] WORDS...

Patches:
    nan_on_rank_1:STEP        rank 1's outputs, and so its loss, are NaN at STEP (an fp16
                              overflow on one shard, a bad row); the other ranks' are not
    draws:FOLDER              every rank draws rank + 1 numbers from torch's generator
                              each step (as dropout would) and writes them, by step, to
                              FOLDER/draws_<rank>.json when training ends
    sigterm_at:STEP           rank 0 gets SIGTERM as step STEP starts (a scheduler's
                              notice, which reaches one machine first)
    stall_on_rank_1:STEP      rank 1 stops (SIGSTOP) as step STEP starts: a peer that
                              stopped answering, its connections still open
    collectives:FOLDER        every collective torch.distributed is asked for from
                              Python, with the number of training steps ended before it,
                              written to FOLDER/collectives_<rank>.json when training ends
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

import litlab.module
import litlab.train
from litlab.cli import command


def nan_on_rank_1(step: str) -> None:
    forward = litlab.module._Supervised.forward

    def patched(self: L.LightningModule, x: torch.Tensor) -> torch.Tensor:
        out = forward(self, x)
        if (
            self.training
            and self.trainer.global_rank == 1
            and self.trainer.global_step == int(step)
        ):
            return out * torch.nan
        return out

    litlab.module._Supervised.forward = patched


class Draws(L.Callback):
    def __init__(self, folder: Path):
        self.folder, self.draws = folder, {}

    def on_train_batch_end(self, trainer: L.Trainer, *_: object) -> None:
        self.draws[trainer.global_step] = torch.rand(trainer.global_rank + 1).tolist()

    def on_train_end(self, trainer: L.Trainer, *_: object) -> None:
        path = self.folder / f"draws_{trainer.global_rank}.json"
        path.write_text(json.dumps(self.draws))


def draws(folder: str) -> None:
    build_trainer = litlab.train.build_trainer

    def patched(*args: Any, **kwargs: Any) -> L.Trainer:
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(Draws(Path(folder)))
        return trainer

    litlab.train.build_trainer = patched


class SignalAt(L.Callback):
    def __init__(self, step: int, rank: int, signum: signal.Signals):
        self.step, self.rank, self.signum = step, rank, signum

    def on_train_batch_start(self, trainer: L.Trainer, *_: object) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            os.kill(os.getpid(), self.signum)


def signal_at(step: str, rank: int, signum: signal.Signals) -> None:
    build_trainer = litlab.train.build_trainer

    def patched(*args: Any, **kwargs: Any) -> L.Trainer:
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(SignalAt(int(step), rank, signum))
        return trainer

    litlab.train.build_trainer = patched


COLLECTIVES = (
    "broadcast",
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "broadcast_object_list",
    "barrier",
)


class Collectives(L.Callback):
    """Counts steps; the wrapped collectives note each call with the count so far."""

    def __init__(self, folder: Path):
        self.folder, self.steps, self.calls = folder, 0, []
        for name in COLLECTIVES:
            setattr(torch.distributed, name, self._wrap(name, getattr(torch.distributed, name)))

    def _wrap(self, name: str, collective: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((self.steps, name))
            return collective(*args, **kwargs)

        return counted

    def on_train_batch_end(self, *_: object) -> None:
        self.steps += 1

    def on_train_end(self, trainer: L.Trainer, *_: object) -> None:
        path = self.folder / f"collectives_{trainer.global_rank}.json"
        path.write_text(json.dumps({"steps": self.steps, "calls": self.calls}))


def collectives(folder: str) -> None:
    build_trainer = litlab.train.build_trainer

    def patched(*args: Any, **kwargs: Any) -> L.Trainer:
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(Collectives(Path(folder)))
        return trainer

    litlab.train.build_trainer = patched


PATCHES = {
    "collectives": collectives,
    "nan_on_rank_1": nan_on_rank_1,
    "draws": draws,
    "sigterm_at": lambda step: signal_at(step, 0, signal.SIGTERM),
    "stall_on_rank_1": lambda step: signal_at(step, 1, signal.SIGSTOP),
}

if __name__ == "__main__":
    name, _, arg = sys.argv[1].partition(":")
    PATCHES[name](arg)
    command(["train", *sys.argv[2:]])
