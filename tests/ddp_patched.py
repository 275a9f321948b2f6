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
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

import litlab.module
import litlab.train
from litlab.cli import main


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


if __name__ == "__main__":
    name, _, arg = sys.argv[1].partition(":")
    {"nan_on_rank_1": nan_on_rank_1, "draws": draws}[name](arg)
    sys.exit(main(["train", *sys.argv[2:]]))
