"""The study: Optuna's storage in the search folder, the budget, and trials queued again."""

from __future__ import annotations

import json
import os
import socket
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
from optuna.trial import FrozenTrial, TrialState

from litlab.search.space import Search, default_params


def quiet() -> warnings.catch_warnings:
    """Optuna's experimental warnings (Retry, its history, the figures): not the user's."""
    return warnings.catch_warnings(action="ignore", category=ExperimentalWarning)


def storage(search: Search) -> optuna.storages.BaseStorage:
    """A journal file in the search folder, or `search.storage`: a database URL (several
    machines; a heartbeat re-queues a dead worker's trial) or a journal file's path."""
    where = search.cfg.get("storage")
    if where and "://" in str(where):
        with quiet():
            retry = Retry()
        return optuna.storages.RDBStorage(
            str(where),
            heartbeat_interval=60,
            grace_period=180,
            heartbeat_stale_trial_callback=retry,
        )
    path = Path(str(where)).expanduser() if where else search.folder / "study.journal"
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def open_study(search: Search, seed_offset: int = 0) -> optuna.Study:
    """Create the study, or load it to resume. The sampler's seed moves on with the trials
    already run (and the worker), so no worker draws the same random trials again."""
    cfg = search.cfg
    pruner = {
        "median": optuna.pruners.MedianPruner(n_startup_trials=3),
        "hyperband": optuna.pruners.HyperbandPruner(),
    }.get(cfg.pruner, optuna.pruners.NopPruner())
    study = optuna.create_study(
        study_name=search.name,
        storage=storage(search),
        direction=cfg.direction,
        pruner=pruner,
        load_if_exists=True,
    )
    seed = cfg.seed + seed_offset + len(study.get_trials(deepcopy=False))
    sampler = optuna.samplers.TPESampler if cfg.sampler == "tpe" else optuna.samplers.RandomSampler
    study.sampler = sampler(seed=seed)
    return study


def replaced_in(trials: list[FrozenTrial]) -> set[int]:
    """Trials queued again as another: all of a retry's history (not only the first)."""
    with quiet():
        return {n for t in trials for n in Retry.retry_history(t)}


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that use up the budget: all but those waiting and those queued again."""
    replaced = replaced_in(trials)
    return sum(t.state != TrialState.WAITING and t.number not in replaced for t in trials)


def requeue(study: optuna.Study, number: int) -> None:
    """Queue trial `number` again with its parameters: Optuna's retry, which `counted` knows."""
    with quiet():
        Retry()(study, study.get_trials()[number])  # a copy: the callback changes it in place


def requeue_dead(study: optuna.Study, folder: Path) -> list[int]:
    """Trials left running by a worker of this machine that is gone (SIGKILL, the OOM killer):
    queued again and failed (a database's heartbeat finds those of other machines)."""
    dead = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if _dead(t)]
    for trial in dead:
        requeue(study, trial.number)
        # Optuna's Trial sets attributes only in its own process: the storage's, by id
        study._storage.set_trial_user_attr(trial._trial_id, "error", "its worker was killed")
        study.tell(trial.number, state=TrialState.FAIL)
        record(
            folder / f"trial_{trial.number}", {"status": "interrupted", "error": "worker killed"}
        )
    return [t.number for t in dead]


def _dead(trial: FrozenTrial) -> bool:
    """Whether the worker (`host:pid`) of a running trial, on this machine, has ended."""
    if "worker" not in trial.user_attrs:  # killed before it wrote its name
        return datetime.now() - (trial.datetime_start or datetime.now()) > timedelta(minutes=1)
    host, _, pid = trial.user_attrs["worker"].partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only whether it is there
    except OSError as exc:
        return isinstance(exc, ProcessLookupError)  # not a PermissionError: someone else's
    return False


def enqueue_default(study: optuna.Study, search: Search) -> None:
    """A new study's first trial is the job as it is, when its values lie in the space."""
    if not study.get_trials(deepcopy=False):
        params, outside = default_params(search)
        if not outside:
            study.enqueue_trial(params, user_attrs={"default": True})


def record(run_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json of a trial that stopped without writing its own (pruned, killed)."""
    from litlab.rundirs import write_status

    old = metrics_of(run_dir)
    if run_dir.is_dir() and old.get("status") not in ("finished", "pruned", "diverged", "failed"):
        write_status(run_dir, **{**old, **metrics})


def metrics_of(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
