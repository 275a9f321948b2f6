"""The study: Optuna's storage in the search folder, the budget, and trials queued again."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import yaml
from omegaconf import OmegaConf
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
from optuna.trial import FrozenTrial, TrialState

from litlab.errors import ConfigError
from litlab.search.space import Search, default_params

SPEC = "search.yaml"  # the search as the workers read it, beside the trials


def storage(search: Search) -> optuna.storages.BaseStorage:
    """A journal file in the search folder (one machine, no server); `search.storage` a
    database URL (several machines; a heartbeat re-queues a dead worker's trial) or the
    path of a journal file on a shared disk."""
    where = search.cfg.get("storage")
    if where and "://" in str(where):
        with warnings.catch_warnings(action="ignore", category=ExperimentalWarning):
            retry = Retry()  # experimental in Optuna, as is retry_history below
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
        "median": optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
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


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that use up the budget: all but those waiting and those queued again."""
    replaced = replaced_in(trials)
    return sum(t.state != TrialState.WAITING and t.number not in replaced for t in trials)


def replaced_in(trials: list[FrozenTrial]) -> set[int]:
    """The trials queued again as another (`requeue`): every one in a retry's history
    (`retried_trial_number` names only the first of a chain of retries)."""
    with warnings.catch_warnings(action="ignore", category=ExperimentalWarning):
        return {n for t in trials for n in Retry.retry_history(t)}


def requeue(study: optuna.Study, number: int) -> None:
    """Queue trial `number` again with its parameters: Optuna's retry, which `counted` knows."""
    # get_trials copies: the callback appends to the trial's retry_history in place
    with warnings.catch_warnings(action="ignore", category=ExperimentalWarning):
        Retry()(study, study.get_trials()[number])


def requeue_dead(study: optuna.Study, folder: Path) -> list[int]:
    """Trials left running by a worker of this machine that is gone (SIGKILL, a power
    cut): queued again, marked failed, and so their folders. Database storages find
    those of other machines by their heartbeat."""
    dead = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if _dead(t)]
    for trial in dead:
        requeue(study, trial.number)
        # Optuna's Trial sets attributes only in its own process: the storage's, by id
        error = "its worker was killed; queued again"
        study._storage.set_trial_user_attr(trial._trial_id, "error", error)
        study.tell(trial.number, state=TrialState.FAIL)
        record(
            folder / f"trial_{trial.number}", {"status": "interrupted", "error": "worker killed"}
        )
    return [t.number for t in dead]


def _dead(trial: FrozenTrial) -> bool:
    """Whether the worker (`host:pid`) of a running trial, on this machine, has ended (a
    zombie too). One killed before it wrote its name is taken for dead after a minute."""
    worker = trial.user_attrs.get("worker")
    if worker is None:
        return (datetime.now() - (trial.datetime_start or datetime.now())).total_seconds() > 60
    host, _, pid = worker.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    return False


def enqueue_default(study: optuna.Study, search: Search) -> None:
    """A new study's first trial is the job as it is, when its values lie in the space
    (marked `default`): the winner is then told beside the default it must beat."""
    if study.get_trials(deepcopy=False):
        return
    params, outside = default_params(search)
    if not outside:
        study.enqueue_trial(params, user_attrs={"default": True}, skip_if_exists=True)


def record(run_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json of a trial that stopped without writing its own (pruned, killed)."""
    from litlab.rundirs import write_json

    old = metrics_of(run_dir)
    if not run_dir.is_dir() or old.get("status") in ("finished", "pruned", "diverged", "failed"):
        return
    last = run_dir / "checkpoints" / "last.ckpt"
    extra = {"last_good_checkpoint": "checkpoints/last.ckpt"} if last.exists() else {}
    write_json(run_dir / "metrics.json", {**old, **metrics, **extra})


def metrics_of(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def save_spec(search: Search) -> None:
    """The search as the workers read it; a folder holding another search is refused
    (but for the budget: running again with a larger search.n_trials goes on)."""
    spec = {"name": search.name, "source": search.source, "job": search.job}
    spec["cfg"] = OmegaConf.to_container(search.cfg)
    path = search.folder / SPEC
    old = yaml.safe_load(path.read_text()) if path.exists() else spec
    old["cfg"]["n_trials"] = search.cfg.n_trials
    if old != spec:
        changed = [k for k in ("name", "source", "job") if spec[k] != old.get(k)]
        changed += [f"search.{k}" for k, v in spec["cfg"].items() if v != old["cfg"].get(k)]
        what = f"holds a search with other settings ({', '.join(changed)})"
        raise ConfigError(
            [f"{search.folder}: {what}; give this one another folder with name=<name>"]
        )
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def load_spec(folder: Path) -> Search:
    spec = yaml.safe_load((folder / SPEC).read_text())
    return Search(spec["name"], spec["source"], OmegaConf.create(spec["cfg"]), spec["job"], folder)
