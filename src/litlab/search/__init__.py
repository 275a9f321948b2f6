"""`litlab search [-j N] search=<option> [key=value ...]`: a hyperparameter search on Optuna.

Each trial is an ordinary run folder, `trial_<n>/`, trained by a worker process (`-j N`
share one study) with Optuna's Lightning pruning callback; the study is a journal file in
the search folder (or `search.storage`), so the same command again resumes it. Modules,
each importing only those before it: space (the option, checked, as Optuna distributions),
study (storage, budget, requeueing), worker (`python -m litlab.search FOLDER SLOT`),
report (the table, best.yaml, figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from litlab.search.report import report
from litlab.search.space import check, parse
from litlab.search.study import enqueue_default, open_study, requeue_dead, save_spec
from litlab.search.worker import lost_workers, run_workers

__all__ = ["search"]


def search(words: list[str], jobs: int = 1) -> tuple[Path, list[dict[str, Any]], int | None]:
    """Check the space, run (or resume) the study with `jobs` workers, write the report
    (trials.csv, best.yaml, figures); return the folder, the ended trials' rows and the
    exit status when it did not run to its end: 128 + the signal that stopped it, 1 when a
    worker was killed or stopped with an error (None: it ran to its end)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the workers' logs say it all
    spec = parse(words)
    check(spec)
    spec.folder.mkdir(parents=True, exist_ok=True)
    save_spec(spec)
    study = open_study(spec)
    requeue_dead(study, spec.folder)
    enqueue_default(study, spec)
    outcome = run_workers(study, spec, jobs)
    lost = False if outcome.signal else lost_workers(study, spec.folder, outcome)
    rows = report(study, spec)
    if outcome.signal:
        return spec.folder, rows, 128 + int(outcome.signal)
    return spec.folder, rows, 1 if lost else None
