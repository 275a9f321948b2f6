"""A checkpoint's metrics on validation and test beside the task's scikit-learn baselines,
fitted on the same training rows: the README's search table.

    python scripts/search_quality.py runs/searches/circles/trial_12/checkpoints/best.ckpt
"""

from __future__ import annotations

import sys

import lightning as L

from litlab.builders import build_data, build_module
from litlab.checkpoints import CHECKPOINT_SECTION, load_checkpoint
from litlab.predict import _composed


def quality(path: str) -> dict[str, float]:
    checkpoint = load_checkpoint(path)
    composed = _composed(checkpoint, path, trust=False)
    datamodule = build_data(composed)
    module = build_module(composed, datamodule)
    module.load_state_dict(checkpoint["state_dict"])
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    (val,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    (test,) = trainer.test(module, datamodule=datamodule, verbose=False)
    scores = {k: float(v) for k, v in (val | test).items()} | datamodule.baselines()
    datamodule.test = datamodule.val  # the same baselines, scored on the validation rows
    scores |= {
        k.replace("baseline/", "val_baseline/"): v for k, v in datamodule.baselines().items()
    }
    assert checkpoint[CHECKPOINT_SECTION]["fold"] is None, "a single split, not a fold"
    return scores


if __name__ == "__main__":
    for key, value in sorted(quality(sys.argv[1]).items()):
        print(f"{key}: {value:.4f}")
