"""The workers: child processes that train one trial each, and the rounds that start them."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import Trial

from litlab.children import Child, Outcome, python_command, run_jobs
from litlab.errors import Interrupted
from litlab.rundirs import compose
from litlab.search.space import Search, space_of, words_of
from litlab.search.study import counted, load_spec, open_study, record, requeue, requeue_dead


def work(folder: Path, slot: int) -> int:
    """A worker: claim one trial, train it, tell the study, exit. One trial a process, so
    that every trial is what a fresh `litlab train` of best.yaml's words gives. The exit
    status is 128 + the signal that stopped the trial, else 0."""
    search = load_spec(folder)
    study = open_study(search, seed_offset=1000 * slot)
    stopped: list[Interrupted] = []
    # Locked while a worker counts the trials and asks for one, so -j N workers start
    # n_trials in all. flock, not Optuna's lock file: the kernel frees it when one is killed.
    with open(folder / "claim.lock", "a") as claim:
        fcntl.flock(claim, fcntl.LOCK_EX)
        if counted(study.get_trials(deepcopy=False)) >= search.cfg.n_trials:
            return 0

        def objective(trial: Trial) -> float:
            fcntl.flock(claim, fcntl.LOCK_UN)  # the trial is ours now, and counts
            return _run_trial(trial, search, stopped)

        # optimize, not ask/tell: it beats the heartbeat of database storages
        study.optimize(objective, n_trials=1, catch=(Exception,))
    return stopped[0].exit_code if stopped else 0


def _run_trial(trial: Trial, search: Search, stopped: list[Interrupted]) -> float:
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    params = {name: _suggest(trial, name, dist) for name, dist in space_of(search).items()}
    run_dir = search.folder / f"trial_{trial.number}"
    try:
        return _train(trial, search, words_of(params), run_dir)
    except optuna.TrialPruned as exc:
        record(run_dir, {"status": "pruned", "error": str(exc), **_best(trial, search)})
        raise
    except Interrupted as exc:  # SIGTERM/Ctrl-C: this trial runs again on resume
        stopped.append(exc)
        requeue(trial.study, trial.number)  # Optuna marks this one failed
        raise
    except Exception as exc:  # diverged, failed: recorded, and the search goes on
        trial.set_user_attr("error", str(exc).splitlines()[0] if str(exc) else repr(exc))
        record(run_dir, {"status": "failed", "error": str(exc)})
        raise


def _suggest(trial: Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _train(trial: Trial, search: Search, words: list[str], run_dir: Path) -> float:
    """The job with the trial's words as an ordinary run in `run_dir`, with Optuna's
    pruning callback; the trial's value is the best `metric` it reported."""
    from optuna_integration import PyTorchLightningPruningCallback

    from litlab.train import train

    pruning = PyTorchLightningPruningCallback(trial, monitor=search.cfg.metric)
    train(compose([*search.job, *words]), run_dir=run_dir, callbacks=[pruning])
    best = _best(trial, search)
    if not best:
        raise RuntimeError(f"search.metric={search.cfg.metric}: the job never logged it")
    return best[f"best_{search.cfg.metric}"]


def _best(trial: Trial, search: Search) -> dict[str, float]:
    """The best value the trial reported, and the epochs it ran."""
    values = trial.study.get_trials(deepcopy=False)[trial.number].intermediate_values
    if not values:
        return {}
    pick = min if search.cfg.direction == "minimize" else max
    return {f"best_{search.cfg.metric}": pick(values.values()), "epochs": max(values) + 1}


def run_workers(study: optuna.Study, search: Search, jobs: int) -> Outcome:
    """Rounds of `jobs` workers, a trial each, until the budget is spent, a signal stops
    them or a worker does not end cleanly; how the last round ended."""
    from litlab.devices import gpus_per_job, visible_gpus, worker_environment

    gpus = visible_gpus()
    per_job = gpus_per_job(compose(search.job).cfg.trainer, len(gpus))
    command = python_command("-m", "litlab.search", str(search.folder))
    workers = [Child([*command, str(k)], search.folder / f"worker_{k}.log") for k in range(jobs)]
    while True:
        outcome = run_jobs(workers, jobs, lambda k: worker_environment(k, per_job, gpus, jobs))
        done = counted(study.get_trials(deepcopy=False)) >= search.cfg.n_trials
        if done or outcome.signal or any(code != 0 for code in outcome.codes):
            return outcome


def lost_workers(study: optuna.Study, folder: Path, outcome: Outcome) -> bool:
    """Say which workers did not end cleanly, whether any did. The trial of one that was
    killed (SIGKILL, the OOM killer) is queued again now, so the report does not show it
    as running."""
    requeued = requeue_dead(study, folder)
    # by the worker each ran in (their copies queued again carry the same user attrs)
    left = {t.user_attrs.get("worker"): t.number for t in study.trials if t.number in requeued}
    for k, (code, pid) in enumerate(zip(outcome.codes, outcome.pids, strict=True)):
        log = folder / f"worker_{k}.log"
        if code is not None and code < 0:
            trial = left.get(f"{socket.gethostname()}:{pid}")
            what = ";" if trial is None else f": its trial {trial} is interrupted and queued again;"
            killed = f"litlab: worker {k} was killed by {_signal_name(-code)} ({log})"
            print(f"{killed}{what} run the same command to go on", file=sys.stderr)
        elif code not in (0, None):
            print(
                f"litlab: worker {k} stopped with an error (exit {code}); see {log}",
                file=sys.stderr,
            )
    return any(code not in (0, None) for code in outcome.codes)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"
