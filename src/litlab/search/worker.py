"""The workers: child processes that train one trial each, and the rounds that start them."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import Trial

from litlab.children import Child, Outcome, python_command, run_jobs
from litlab.errors import Interrupted
from litlab.rundirs import compose
from litlab.search.space import Search, parse, space_of, words_of
from litlab.search.study import counted, open_study, record, requeue, requeue_dead


def work(words: list[str], slot: int) -> int:
    """Claim one trial of the search of `words`, train it, tell the study; 128 + the signal
    that stopped it, else 0. One trial a process: each is what a fresh `litlab train` gives."""
    search = parse(words)
    study = open_study(search, seed_offset=1000 * slot)
    stopped: list[Interrupted] = []
    # flock, not Optuna's lock file: the kernel frees it when its worker is killed
    with open(search.folder / "claim.lock", "a") as claim:
        fcntl.flock(claim, fcntl.LOCK_EX)  # held while counting: -j N start n_trials in all
        if counted(study.get_trials(deepcopy=False)) >= search.cfg.n_trials:
            return 0

        def objective(trial: Trial) -> float:
            fcntl.flock(claim, fcntl.LOCK_UN)  # the trial is ours now, and counts
            return _run_trial(trial, search, stopped)

        # optimize, not ask/tell: it beats the heartbeat of database storages
        study.optimize(objective, n_trials=1, catch=(Exception,))
    return stopped[0].exit_code if stopped else 0


def _run_trial(trial: Trial, search: Search, stopped: list[Interrupted]) -> float:
    from optuna_integration import PyTorchLightningPruningCallback

    from litlab.train import train

    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    params = {}
    for name, dist in space_of(search).items():
        if isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        else:
            suggest = (
                trial.suggest_int if isinstance(dist, IntDistribution) else trial.suggest_float
            )
            params[name] = suggest(name, dist.low, dist.high, step=dist.step, log=dist.log)
    run_dir, metric = search.folder / f"trial_{trial.number}", search.cfg.metric
    try:
        pruning = PyTorchLightningPruningCallback(trial, monitor=metric)
        train(compose([*search.job, *words_of(params)]), run_dir=run_dir, callbacks=[pruning])
        best = _best(trial, search)
        if not best:
            raise RuntimeError(f"search.metric={metric}: the job never logged it")
        return best[f"best_{metric}"]
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


def _best(trial: Trial, search: Search) -> dict[str, float]:
    """The best value the trial reported, and the epochs it ran."""
    values = trial.study.get_trials(deepcopy=False)[trial.number].intermediate_values
    if not values:
        return {}
    pick = min if search.cfg.direction == "minimize" else max
    return {f"best_{search.cfg.metric}": pick(values.values()), "epochs": max(values) + 1}


def run_workers(study: optuna.Study, search: Search, words: list[str], jobs: int) -> Outcome:
    """Rounds of `jobs` workers on the search of `words`, a trial each, until the budget is
    spent, a signal stops them or a worker does not end cleanly; how the last round ended."""
    from litlab.devices import gpus_per_job, visible_gpus, worker_environment

    gpus = visible_gpus()
    per_job = gpus_per_job(compose(search.job).cfg.trainer, len(gpus))
    command = python_command("-m", "litlab.search")
    workers = [
        Child([*command, str(k), *words], search.folder / f"worker_{k}.log") for k in range(jobs)
    ]
    while True:
        outcome = run_jobs(workers, jobs, lambda k: worker_environment(k, per_job, gpus, jobs))
        done = counted(study.get_trials(deepcopy=False)) >= search.cfg.n_trials
        if done or outcome.signal or any(code != 0 for code in outcome.codes):
            return outcome


def lost_workers(study: optuna.Study, folder: Path, outcome: Outcome) -> bool:
    """Say which workers did not end cleanly, whether any did; the trial of one that was
    killed (SIGKILL, the OOM killer) is queued again now."""
    requeued = requeue_dead(study, folder)
    left = {t.user_attrs.get("worker"): t.number for t in study.trials if t.number in requeued}
    for k, (code, pid) in enumerate(zip(outcome.codes, outcome.pids, strict=True)):
        log = folder / f"worker_{k}.log"
        if code is not None and code < 0:
            trial = left.get(f"{socket.gethostname()}:{pid}")
            what = ";" if trial is None else f": its trial {trial} is interrupted and queued again;"
            name = next((s.name for s in signal.Signals if s == -code), f"signal {-code}")
            what += " run the same command to go on"
            print(f"litlab: worker {k} was killed by {name} ({log}){what}", file=sys.stderr)
        elif code not in (0, None):
            why = f"stopped with an error (exit {code}); see {log}"
            print(f"litlab: worker {k} {why}", file=sys.stderr)
    return any(code not in (0, None) for code in outcome.codes)
