"""`litlab compare`: the lesson's point as one command.

Two sweeps on the circles job, each setting over several seeds: full-batch gradient
descent, momentum, RMSProp and Adam at their configured learning rates; then Adam with
no decay, step, exponential and cosine decay. Writes comparison.png (mean training loss
with a one-std band per setting) and comparison.csv (final metrics, and how many steps
each took to reach 95% training accuracy: full-batch, a step is an epoch); the runs
themselves are in TensorBoard under runs/sweeps/.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from litlab import figures
from litlab.rundirs import claim_run_dir, compose
from litlab.sweep import sweep, write_csv

PANELS = {
    "optimisers": ["optimizer=sgd,momentum,rmsprop,adam"],
    "learning-rate decay (Adam)": ["optimizer=adam", "scheduler=none,step,exponential,cosine"],
}
TARGET = 0.95  # training accuracy whose time to reach is compared


def compare(
    words: list[str], seeds: str = "1,2,3", jobs: int = 1
) -> tuple[Path, list[dict[str, Any]]]:
    """Run both comparisons (`words` change the job, e.g. trainer.max_epochs=300); return
    the folder of the figure and table, and the table's rows."""
    common = ["trainer.log_every_n_steps=10", *words, f"seed={seeds}"]
    panels, rows = {}, []
    for title, axis in PANELS.items():
        folder, _ = sweep([*axis, *common], jobs)
        curves = {}
        for setting, runs in _runs_by_setting(folder).items():
            logged = [_scalars(run) for run in runs]
            curves[setting] = _mean_curve([s["train/loss"] for s in logged])
            rows.append(_row(title, setting, runs, logged))
        panels[title] = curves
    # claimed after the sweeps: one refused (another compare runs them) leaves no folder
    out = claim_run_dir(Path(compose(words).cfg.runs_dir).expanduser() / "compare")
    figures.comparison(panels).savefig(out / "comparison.png")
    write_csv(out / "comparison.csv", rows)
    return out, rows


def _runs_by_setting(folder: Path) -> dict[str, list[Path]]:
    """Finished run folders of a sweep by setting (the folder name without its seed)."""
    settings: dict[str, list[Path]] = {}
    for metrics in sorted(folder.glob("*/run/*/metrics.json")):
        if json.loads(metrics.read_text()).get("status") != "finished":
            continue  # an earlier attempt that was interrupted or failed
        name = metrics.parents[2].name
        setting = "_".join(part for part in name.split("_") if not part.startswith("seed="))
        settings.setdefault(setting, []).append(metrics.parent)
    return settings


def _scalars(run: Path) -> dict[str, list[Any]]:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


def _mean_curve(curves: list[list[Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    length = min(len(c) for c in curves)  # the same steps in every run of a setting
    values = np.array([[e.value for e in c[:length]] for c in curves])
    return np.array([e.step for e in curves[0][:length]]), values.mean(0), values.std(0)


def _row(
    panel: str, setting: str, runs: list[Path], logged: list[dict[str, list[Any]]]
) -> dict[str, Any]:
    steps = [s for s in (_steps_to(log["train/acc"]) for log in logged) if s is not None]
    final = [log["train/loss"][-1].value for log in logged]
    test_acc = [log["test/acc"][-1].value for log in logged]
    return {
        "panel": panel,
        "setting": setting,
        "seeds": len(runs),
        "test/acc": statistics.mean(test_acc),
        "final train/loss": statistics.mean(final),
        f"reached {TARGET:.0%}": f"{len(steps)}/{len(runs)}",
        f"steps to {TARGET:.0%}": statistics.mean(steps) if steps else float("nan"),
    }


def _steps_to(accuracy: list[Any]) -> int | None:
    """The steps training took until its accuracy first reached TARGET (to the logging
    cadence), or None. Steps, not seconds: runs share the CPU with each other (-j)."""
    return next((event.step + 1 for event in accuracy if event.value >= TARGET), None)
