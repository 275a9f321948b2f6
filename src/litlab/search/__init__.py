"""`litlab search [-j N] search=<option> [key=value ...]`: a hyperparameter search on Optuna.
Each trial is a run folder, `trial_<n>/`, trained by a worker process; the study is a journal
file in the search folder (or `search.storage`), so the same command resumes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from litlab.search.report import report
from litlab.search.space import check, parse
from litlab.search.study import enqueue_default, open_study, requeue_dead
from litlab.search.worker import lost_workers, run_workers

__all__ = ["search"]


def search(words: list[str], jobs: int = 1) -> tuple[Path, list[dict[str, Any]], int | None]:
    """Run (or resume) the study with `jobs` workers and write the report; the folder, the
    ended trials' rows, and the exit status when it did not run to its end (128 + the
    signal that stopped it, 1 when a worker was killed or failed)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the workers' logs say it all
    spec = parse(words)
    check(spec)
    spec.folder.mkdir(parents=True, exist_ok=True)
    study = open_study(spec)
    requeue_dead(study, spec.folder)
    enqueue_default(study, spec)
    outcome = run_workers(study, spec, words, jobs)
    lost = not outcome.signal and lost_workers(study, spec.folder, outcome)
    rows = report(study, spec)
    if outcome.signal:
        return spec.folder, rows, 128 + int(outcome.signal)
    return spec.folder, rows, 1 if lost else None
