"""The README's task table, measured: each task's command as the table gives it (seed 0),
its headline test metric beside its best fitted baseline and its trivial one, and, with
--docs, the pictures each run draws copied to docs/pictures/<task>_<picture>.png.

    .venv/bin/python scripts/task_table.py [OUT_DIR] [--docs]

The slow tests that train these jobs check their README cells (tests/conftest.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

from litlab.builders import build_data
from litlab.config import compose
from litlab.dashboard import start_figures
from litlab.train import run
from litlab.verdict import TRIVIAL

DOCS = Path(__file__).resolve().parents[1] / "docs" / "pictures"
METRIC = {"circles": "acc", "diabetes": "r2", "digits": "acc", "cancer": "acc"}  # the columns
# the pictures drawn before training, for a constant rate (circles) and a cosine one
# (digits); the other two tasks' rates are constant too
BEFORE_TRAINING = ("circles", "digits")


def cancer_csv(folder: Path) -> Path:
    """breast_cancer with a text diagnosis and an id, as the README's worked example."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame.insert(0, "patient_id", range(1000, 1000 + len(frame)))
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    frame.to_csv(folder / "cancer.csv", index=False)
    return folder / "cancer.csv"


def words(task: str, folder: Path) -> list[str]:
    """The task's command, as the table's first row gives it."""
    return {
        "circles": [],
        "diabetes": ["experiment=diabetes", "data.folds=5"],
        "digits": ["experiment=digits"],
        "cancer": ["data=csv", f"data.path={cancer_csv(folder)}", "data.target=diagnosis"],
    }[task]


def cell(metrics: dict[str, Any], metric: str) -> str:
    """`acc 0.947 (svc 0.960; majority 0.507)`: the network, its best fitted baseline and
    its trivial one (means over folds for a cross-validation)."""

    def value(key: str) -> float:
        found = metrics[key]
        return found["mean"] if isinstance(found, dict) else found

    scores = {
        k.split("/")[1]: value(k)
        for k in metrics
        if k.startswith("baseline/") and k.endswith(f"/{metric}")
    }
    fitted = {m: v for m, v in scores.items() if m not in TRIVIAL}
    best = max(fitted, key=fitted.get)
    (trivial,) = [m for m in scores if m in TRIVIAL]
    folds = f" over {metrics['folds']} folds" if "folds" in metrics else ""
    return (
        f"{metric} {value(f'test/{metric}'):.3f}{folds} ({best} {fitted[best]:.3f}; "
        f"{trivial} {scores[trivial]:.3f})"
    )


def copy_pictures(task: str, run_dir: Path, composed: Any, folds: bool) -> None:
    """The run's plots/*.png (fold 0's for a cross-validation), and for BEFORE_TRAINING
    the pictures TensorBoard gets before training, into DOCS as <task>_<name>.png."""
    DOCS.mkdir(parents=True, exist_ok=True)
    for png in sorted((run_dir / ("fold_0" if folds else "") / "plots").glob("*.png")):
        shutil.copyfile(png, DOCS / f"{task}_{png.name}")
    if task in BEFORE_TRAINING:
        for tag, figure in start_figures(composed, build_data(composed)).items():
            name = {"schedule/learning_rate": "learning_rate"}.get(tag, tag.replace("/", "_"))
            figure.savefig(DOCS / f"{task}_{name}.png")


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--docs"]
    folder = Path(args[0]) if args else Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    for task, metric in METRIC.items():
        composed = compose([f"runs_dir={folder}/runs", "seed=0", *words(task, folder)])
        run_dir, metrics = run(composed)
        print(f"| {task} | {cell(metrics, metric)} |", flush=True)
        if "--docs" in sys.argv:
            copy_pictures(task, run_dir, composed, "folds" in metrics)


if __name__ == "__main__":
    main()
