"""The two places where litlab must touch what Lightning and TensorBoard do not publish.

Kept here, alone, so that a new Lightning that changes them breaks one module, and
tests/test_lightning_internals.py says so loudly, rather than a run going wrong quietly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


def tensorboard_file_writer(summary_writer: Any) -> Any:
    """The event-file writer of a SummaryWriter, reopened if Lightning closed it at the
    end of fit. Hyperparameters written through it land in the run's own events file;
    SummaryWriter.add_hparams would start a new run of its own (as Lightning's own
    `log_hyperparams` also works around)."""
    return summary_writer._get_file_writer()


def claim_last_checkpoint(callback: ModelCheckpoint, path: Path) -> None:
    """Tell `callback` that the checkpoint at `path` (saved by someone else, with the
    callback's state) is its own `last.ckpt`, so that a run resumed from it overwrites
    it, rather than keeping it and starting `last-v1.ckpt`. Lightning has no public
    way: saving through the callback's own last-checkpoint path needs its private
    `_save_last_checkpoint`."""
    callback.last_model_path = str(path)
