"""The place where litlab must touch what Lightning and TensorBoard do not publish.

Kept here, alone, so that a new Lightning that changes them breaks one module, and
tests/test_lightning_internals.py says so loudly, rather than a run going wrong quietly.
"""

from __future__ import annotations

from typing import Any


def tensorboard_file_writer(summary_writer: Any) -> Any:
    """The event-file writer of a SummaryWriter, reopened if Lightning closed it at the
    end of fit. Hyperparameters written through it land in the run's own events file;
    SummaryWriter.add_hparams would start a new run of its own (as Lightning's own
    `log_hyperparams` also works around)."""
    return summary_writer._get_file_writer()
