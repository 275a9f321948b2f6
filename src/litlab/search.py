"""`litlab search [-j N] search=<option> [key=value ...]`: a hyperparameter search on Optuna.

An option of configs/search/ names the job (`job`), the space (`params`: a list is a
categorical choice, of config-group options too; `{type: float|int, low, high, log,
step}` a range), the budget (`n_trials`, in all) and how to judge and stop trials
(`metric`, `direction`, `sampler`, `pruner`). The whole space is checked like any config
before a trial starts. Each trial is an ordinary run folder, `trial_<n>/`, trained
in-process by a worker (`-j N` workers share one study), with Optuna's Lightning pruning
callback added to its Trainer. The study is a journal file in the search folder (or
`search.storage`, a database URL), so running the same command again resumes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from litlab.children import Child, Outcome, python_command, run_jobs
from litlab.config import CLI, groups
from litlab.errors import ConfigError, Interrupted
from litlab.rundirs import compose
from litlab.verdict import HEADLINE, outcome, row_step

KEYS = ("job", "n_trials", "metric", "direction", "sampler", "seed", "pruner", "storage", "params")
RANGE_KEYS = ("type", "low", "high", "log", "step")
CHOICES = {
    "direction": ("minimize", "maximize"),
    "sampler": ("tpe", "random"),
    "pruner": ("median", "hyperband", "none"),
}
SPEC = "search.yaml"  # the search as the workers read it, beside the trials
DONE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class Search:
    name: str  # the folder under <runs_dir>/searches/ and the study's name
    source: str  # the option's file, for error messages
    cfg: DictConfig  # the option's keys (KEYS), with the command line's search.* words
    job: list[str]  # every trial's words before its own: the option's job, then the user's
    folder: Path


# --------------------------------------------------------------------------- the space


def parse(words: list[str]) -> Search:
    """Split the words into the search option (`search=`, `search.key=`) and the job. An
    option of configs/search/ is composed by Hydra, as every group is; a file of your
    own is `search=~/my_space.yaml`."""
    option = [w.partition("=")[2] for w in words if w.startswith("search=")]
    if not option:
        allowed = ", ".join(groups().get("search", []))
        raise ConfigError([f"search: pick a search space with search=<option>; one of: {allowed}"])
    mine = [w for w in words if w.startswith(("search=", "search."))]
    own = Path(option[-1]).expanduser()
    if own.suffix == ".yaml":
        if not own.is_file():
            raise ConfigError([f"search={option[-1]} ({CLI}): no such file"])
        changes = OmegaConf.from_dotlist([w.removeprefix("search.") for w in mine[1:]])
        cfg, source, stem = OmegaConf.merge(OmegaConf.load(own), changes), str(own), own.stem
    else:
        composed = compose(mine)
        cfg, stem = composed.cfg.search, option[-1]
        source = composed.source("search").partition(" + ")[0]
    user = [w for w in words if w not in mine]
    named = [w.partition("=")[2] for w in user if w.startswith("name=")]
    job = [*(str(w) for w in cfg.get("job") or []), *user]
    runs_dir = compose(job).cfg.runs_dir
    name = named[-1] if named else stem
    folder = Path(runs_dir).expanduser() / "searches" / name
    return Search(name, source, cfg, job, folder)


def check(search: Search) -> dict[str, BaseDistribution]:
    """Every error of the search option at once (keys, values, bounds), then every value
    of the space composed into the job and checked as a run would be; the space."""
    errors = [
        f"search.{key} ({search.source}): unknown key; allowed: {', '.join(KEYS)}"
        for key in search.cfg
        if key not in KEYS
    ]
    errors += _check_values(search)
    space: dict[str, BaseDistribution] = {}
    for name, node in (search.cfg.get("params") or {}).items():
        try:
            space[str(name)] = distribution(node)
        except ConfigError as exc:
            errors += [f"search.params.{name} ({search.source}): {e}" for e in exc.errors]
    if errors:
        raise ConfigError(errors)
    errors = _check_samples(search, space)
    if errors:
        raise ConfigError(list(dict.fromkeys(errors)))
    return space


def _check_values(search: Search) -> list[str]:
    cfg, errors = search.cfg, []
    for key, allowed in CHOICES.items():
        if cfg.get(key) not in allowed:
            choose = ", ".join(allowed)
            errors.append(f"search.{key}={cfg.get(key)} ({search.source}): choose one of: {choose}")
    n_trials = cfg.get("n_trials")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        errors.append(f"search.n_trials={n_trials} ({search.source}): expected an int >= 1")
    if not isinstance(cfg.get("seed"), int):
        errors.append(f"search.seed={cfg.get('seed')} ({search.source}): expected an int")
    if not isinstance(cfg.get("metric"), str):
        errors.append(
            f"search.metric={cfg.get('metric')} ({search.source}): expected a metric name"
        )
    if not isinstance(cfg.get("params"), DictConfig) or not cfg.params:
        errors.append(
            f"search.params ({search.source}): expected a mapping of keys to ranges or lists"
        )
    return errors


def distribution(node: Any) -> BaseDistribution:
    """The Optuna distribution of one entry of `params`: a list is a categorical choice
    (a list value, like hidden sizes, is kept as its text: Optuna's choices are scalars),
    a mapping a float or int range."""
    if isinstance(node, ListConfig):
        if not node:
            raise ConfigError(["an empty list: give the values to choose from"])
        return CategoricalDistribution([_choice(v) for v in OmegaConf.to_container(node)])
    if not isinstance(node, DictConfig):
        raise ConfigError([f"{node!r}: expected a list of choices or {{type, low, high}}"])
    unknown = [k for k in node if k not in RANGE_KEYS]
    if unknown:
        raise ConfigError([f"unknown key {unknown[0]}; allowed: {', '.join(RANGE_KEYS)}"])
    kind, low, high = node.get("type"), node.get("low"), node.get("high")
    log, step = bool(node.get("log", False)), node.get("step")
    if kind not in ("float", "int"):
        raise ConfigError([f"type={kind}: choose one of: float, int (a list for choices)"])
    if not isinstance(low, int | float) or not isinstance(high, int | float) or low >= high:
        raise ConfigError([f"low={low}, high={high}: expected numbers with low < high"])
    if log and low <= 0:
        raise ConfigError([f"low={low} with log: true: a log range needs low > 0"])
    try:
        if kind == "int":
            return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
        return FloatDistribution(float(low), float(high), log=log, step=step)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None


def _choice(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else value


def words_of(params: dict[str, Any]) -> list[str]:
    """The command-line words of a trial's parameters (`optimizer=adam`, `optimizer.lr=…`)."""
    return [f"{name}={_text(value)}" for name, value in params.items()]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else repr(value) if isinstance(value, float) else str(value)


def _check_samples(search: Search, space: dict[str, BaseDistribution]) -> list[str]:
    """Compose the job with every choice and both ends of every range (the other
    parameters at their first value), as a run would check it."""
    from litlab.check import check as check_run  # torch: only once the option is sound

    first = {name: _samples(d)[0] for name, d in space.items()}
    errors = []
    for name, dist in space.items():
        for value in _samples(dist):
            words = [*search.job, *words_of(first | {name: value})]
            try:
                composed = check_run(compose(words))
                _check_trainer(composed.cfg.trainer)
            except ConfigError as exc:
                where = f"search.params.{name}={_text(value)} ({search.source})"
                errors += [f"{where}: {e}" for e in exc.errors]
    return errors


def _samples(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def _check_trainer(trainer: DictConfig) -> None:
    """A DDP trial would start this worker again in every process it launches (Lightning
    re-runs the command), and Optuna's callback prunes under DDP only from a database."""
    strategy = trainer.get("strategy", "")
    if isinstance(strategy, DictConfig):  # a node: its class names it
        strategy = str(strategy.get("_target_", "")).rpartition(".")[2]
    if "ddp" in str(strategy).lower():
        raise ConfigError(
            [
                f"trainer.strategy={strategy}: a search trial runs inside a worker and "
                "cannot launch DDP processes; use -j N (one trial per GPU) instead"
            ]
        )


# --------------------------------------------------------------------------- the study


def storage(search: Search) -> optuna.storages.BaseStorage:
    """A journal file in the search folder (one machine, no server); `search.storage` a
    database URL (workers on several machines; a heartbeat re-queues a dead worker's
    trial) or the path of a journal file on a shared disk."""
    where = search.cfg.get("storage")
    if where and "://" in str(where):
        with warnings.catch_warnings():  # the retry callback: experimental since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
        return optuna.storages.RDBStorage(
            str(where),
            heartbeat_interval=60,
            grace_period=180,
            heartbeat_stale_trial_callback=retry,
        )
    path = Path(str(where)).expanduser() if where else search.folder / "study.journal"
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def open_study(search: Search, seed_offset: int = 0) -> optuna.Study:
    """Create the study, or load it to resume. The sampler's seed moves on with the
    trials already run (and the worker), so a resumed or parallel search does not draw
    its first random trials again."""
    cfg = search.cfg
    study = optuna.create_study(
        study_name=search.name,
        storage=storage(search),
        direction=cfg.direction,
        pruner=_pruner(cfg.pruner),
        load_if_exists=True,
    )
    seed = cfg.seed + seed_offset + len(study.get_trials(deepcopy=False))
    study.sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if cfg.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    return study


def _pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":  # prune below the median of earlier trials at the same epoch
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that use up the budget: all but those waiting, and those a killed or
    stopped worker left, which were queued again as a new trial."""
    replaced = _replaced(trials)
    return sum(t.state != TrialState.WAITING and t.number not in replaced for t in trials)


def _replaced(trials: list[FrozenTrial]) -> set[int]:
    """The trials queued again as another (`requeue`): every one in a retry's history.
    `retried_trial_number` names only the first of them, so a retry that was stopped in
    turn counted as a trial of its own (5 asked, 4 ended)."""
    history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history
    with warnings.catch_warnings():  # experimental since Optuna 3.0, still there in 5.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {number for t in trials for number in history(t)}


def requeue(study: optuna.Study, number: int) -> None:
    """Queue trial `number` again with its parameters: Optuna's own retry, which the
    budget (`counted`) knows as a replacement."""
    # a copy: the callback appends to the trial's retry_history list in place, which
    # would change the storage's own record of it in this process
    trial = next(t for t in study.get_trials() if t.number == number)
    with warnings.catch_warnings():  # experimental since Optuna 2.8, still there in 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, trial)


def requeue_dead(study: optuna.Study, folder: Path) -> list[int]:
    """Trials left running by a worker of this machine that is gone (SIGKILL, a power
    cut): queued again; their folders say so. Database storages find those of other
    machines by their heartbeat."""
    dead = [
        t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if _dead(t)
    ]
    store = study._storage  # the storage we built: storage(search)
    study_id = store.get_study_id_from_name(study.study_name)
    for number in dead:
        requeue(study, number)
        trial_id = store.get_trial_id_from_study_id_trial_number(study_id, number)
        store.set_trial_user_attr(trial_id, "error", "its worker was killed; queued again")
        store.set_trial_state_values(trial_id, TrialState.FAIL)
        _record(folder / f"trial_{number}", {"status": "interrupted", "error": "worker killed"})
    return dead


def _dead(trial: FrozenTrial) -> bool:
    """Whether the worker (`host:pid`) of a running trial, on this machine, has ended (a
    zombie too: killed, not yet reaped; a container's init may take its time). A trial
    killed before its worker wrote its name is taken for dead after a minute."""
    worker = trial.user_attrs.get("worker")
    if worker is None:
        started = trial.datetime_start or datetime.now()
        return (datetime.now() - started).total_seconds() > 60
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


def _record(run_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json of a trial that stopped without writing its own (pruned, killed)."""
    from litlab.rundirs import write_json

    if not run_dir.is_dir():
        return
    old = _metrics(run_dir)
    if old.get("status") in ("finished", "pruned", "diverged", "failed"):
        return
    last = run_dir / "checkpoints" / "last.ckpt"
    extra = {"last_good_checkpoint": "checkpoints/last.ckpt"} if last.exists() else {}
    write_json(run_dir / "metrics.json", {**old, **metrics, **extra})


def _metrics(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- a worker


class _Claim:
    """An exclusive lock on the search folder while a worker counts the trials and asks
    for the next one, so -j N workers never start more than n_trials in all. (Workers on
    several machines sharing a database each lock their own folder: they may overshoot
    by up to one trial per machine, as Optuna's MaxTrialsCallback does.)"""

    def __init__(self, folder: Path):
        self.file = open(folder / "claim.lock", "a")  # noqa: SIM115
        self.held = False

    def acquire(self) -> None:
        fcntl.flock(self.file, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.held = False


def work(folder: Path, slot: int) -> int:
    """A worker: claim one trial, train it, tell the study, exit (the search starts the
    next worker). One trial a process, so that every trial is what a fresh `litlab train`
    of best.yaml's words gives (a second run in one process once gave other numbers:
    an import that moved the seeded generator, since fixed in litlab.model). The exit
    status is 128 + the signal that stopped the trial, else 0."""
    search = _load_spec(folder)
    space = {k: distribution(v) for k, v in (search.cfg.params or {}).items()}
    study = open_study(search, seed_offset=1000 * slot)
    claim, stopped = _Claim(folder), []
    claim.acquire()
    if counted(study.get_trials(deepcopy=False)) >= search.cfg.n_trials:
        claim.release()
        return 0
    objective = _Objective(search, space, claim, stopped)
    try:  # optimize, not ask/tell: it beats the heartbeat of database storages
        study.optimize(objective, n_trials=1, catch=(Exception,))
    finally:
        claim.release()
    return stopped[0].exit_code if stopped else 0


@dataclass
class _Objective:
    search: Search
    space: dict[str, BaseDistribution]
    claim: _Claim
    stopped: list[Interrupted]

    def __call__(self, trial: Trial) -> float:
        self.claim.release()  # the trial is ours now, and counts
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = {name: _suggest(trial, name, dist) for name, dist in self.space.items()}
        run_dir = self.search.folder / f"trial_{trial.number}"
        try:
            return _train(trial, self.search, words_of(params), run_dir)
        except optuna.TrialPruned as exc:
            _record(run_dir, {"status": "pruned", "error": str(exc), **_best(trial, self.search)})
            raise
        except Interrupted as exc:  # SIGTERM/Ctrl-C: this trial runs again on resume
            self.stopped.append(exc)
            requeue(trial.study, trial.number)  # Optuna marks this one failed
            raise
        except Exception as exc:  # diverged, failed: recorded, and the search goes on
            trial.set_user_attr("error", str(exc).splitlines()[0] if str(exc) else repr(exc))
            _record(run_dir, {"status": "failed", "error": str(exc)})
            raise


def _suggest(trial: Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _train(trial: Trial, search: Search, words: list[str], run_dir: Path) -> float:
    """The job with the trial's words, trained as an ordinary run in `run_dir` with the
    pruning callback; the trial's value is the best `metric` it reported."""
    from optuna_integration import PyTorchLightningPruningCallback

    from litlab.train import train

    composed = compose([*search.job, *words])
    pruning = PyTorchLightningPruningCallback(trial, monitor=search.cfg.metric)
    train(composed, run_dir=run_dir, callbacks=[pruning])
    best = _best(trial, search)
    if not best:
        raise RuntimeError(f"search.metric={search.cfg.metric}: the job never logged it")
    return best[f"best_{search.cfg.metric}"]


def _best(trial: Trial, search: Search) -> dict[str, float]:
    """The best value the trial reported, and the epochs it ran."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    values = list(frozen.intermediate_values.values())
    if not values:
        return {}
    pick = min if search.cfg.direction == "minimize" else max
    return {
        f"best_{search.cfg.metric}": pick(values),
        "epochs": max(frozen.intermediate_values) + 1,
    }


# --------------------------------------------------------------------------- the search


def search(words: list[str], jobs: int = 1) -> tuple[Path, list[dict[str, Any]], int | None]:
    """Check the space, run (or resume) the study with `jobs` workers, write the report
    (trials.csv, best.yaml, figures); return the folder, the best trials' rows and the
    exit status when it did not run to its end: 128 + the signal that stopped it, 1 when a
    worker was killed or stopped with an error (None: it ran to its end)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the workers' logs say it all
    spec = parse(words)
    check(spec)
    spec.folder.mkdir(parents=True, exist_ok=True)
    _save_spec(spec)
    requeue_dead(open_study(spec), spec.folder)
    enqueue_default(open_study(spec), spec)
    outcome = _run_workers(spec, jobs)
    study = open_study(spec)
    lost = False if outcome.signal else _lost_workers(study, spec.folder, outcome)
    rows = report(study, spec)
    if outcome.signal:
        return spec.folder, rows, 128 + int(outcome.signal)
    return spec.folder, rows, 1 if lost else None


def default_params(search: Search) -> tuple[dict[str, Any], list[str]]:
    """The job's own value of each searched key (a group's option, a key's value), and
    the words of those outside the space."""
    space = {k: distribution(v) for k, v in (search.cfg.params or {}).items()}
    composed = compose(search.job)
    params, outside = {}, []
    for name, dist in space.items():
        value = composed.choices.get(name, OmegaConf.select(composed.cfg, name))
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value)
        value = _choice(value)
        if _contains(dist, value):
            params[name] = value
        else:
            outside.append(f"{name}={_text(value)}")
    return params, outside


def _contains(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and dist.low <= value <= dist.high


def enqueue_default(study: optuna.Study, search: Search) -> None:
    """A new study's first trial is the job as it is, when its values lie in the space:
    the search's winner is then told beside the default it must beat (and Optuna's
    sampler learns from a known setting). Marked `default` among the trial's attrs."""
    if study.get_trials(deepcopy=False):
        return
    params, outside = default_params(search)
    if not outside:
        study.enqueue_trial(params, user_attrs={"default": True}, skip_if_exists=True)


def _run_workers(search: Search, jobs: int) -> Outcome:
    """Rounds of `jobs` workers, a trial each, until the budget is spent, a signal stops
    them or a worker does not end cleanly; how the last round ended."""
    from litlab.devices import gpus_per_job, visible_gpus, worker_environment

    gpus = visible_gpus()
    per_job = gpus_per_job(compose(search.job).cfg.trainer, len(gpus))
    command = python_command("-m", "litlab.search", str(search.folder))
    workers = [Child([*command, str(k)], search.folder / f"worker_{k}.log") for k in range(jobs)]
    while True:
        outcome = run_jobs(workers, jobs, lambda k: worker_environment(k, per_job, gpus, jobs))
        done = counted(open_study(search).get_trials(deepcopy=False)) >= search.cfg.n_trials
        if done or outcome.signal or any(code != 0 for code in outcome.codes):
            return outcome


def _lost_workers(study: optuna.Study, folder: Path, outcome: Outcome) -> bool:
    """Say which workers did not end cleanly, whether any did. The trial of one that was
    killed (SIGKILL, the OOM killer) is marked interrupted and queued again now, as the
    next run would, so the report does not show it as running."""
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
            error = f"litlab: worker {k} stopped with an error (exit {code}); see {log}"
            print(error, file=sys.stderr)
    return any(code not in (0, None) for code in outcome.codes)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"


def _save_spec(search: Search) -> None:
    """The search as the workers read it; a folder holding another search is refused
    (the budget may change: running again with a larger search.n_trials goes on)."""
    spec = {"name": search.name, "source": search.source, "job": search.job}
    spec["cfg"] = OmegaConf.to_container(search.cfg)
    path = search.folder / SPEC
    if path.exists():
        old = yaml.safe_load(path.read_text())
        same = {**old, "cfg": {**old["cfg"], "n_trials": search.cfg.n_trials}}
        if same != spec:
            diff = [k for k in spec if spec[k] != same.get(k)]
            what = ", ".join(
                diff
                if "cfg" not in diff
                else diff[:-1]
                + [f"search.{k}" for k in spec["cfg"] if spec["cfg"][k] != same["cfg"].get(k)]
            )
            raise ConfigError(
                [
                    f"{search.folder}: holds a search with other settings ({what}); "
                    f"give this one another folder with name=<name>"
                ]
            )
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def _load_spec(folder: Path) -> Search:
    spec = yaml.safe_load((folder / SPEC).read_text())
    return Search(spec["name"], spec["source"], OmegaConf.create(spec["cfg"]), spec["job"], folder)


# --------------------------------------------------------------------------- the report


def report(study: optuna.Study, search: Search) -> list[dict[str, Any]]:
    """Write trials.csv (every trial), best.yaml and the figures; return the rows of the
    best trials, best first, each with its headline test metrics."""
    trials = study.get_trials(deepcopy=False)
    replaced = _replaced(trials)
    found = {t.number: _metrics(search.folder / f"trial_{t.number}") for t in trials}
    shown = [m for m in HEADLINE if any(f"test/{m}" in found[n] for n in found)]
    rows = [_row(t, found[t.number], shown, search, t.number in replaced) for t in trials]
    rows = [row for row, t in zip(rows, trials, strict=True) if t.state in DONE]
    study.trials_dataframe().to_csv(search.folder / "trials.csv", index=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if done:
        _write_best(study, search, found)
        _figures(study, search.folder, len(done))
    sign = 1 if search.cfg.direction == "minimize" else -1
    return sorted(rows, key=lambda r: (r["value"] is None, sign * (r["value"] or 0)))


def _row(
    trial: FrozenTrial,
    metrics: dict[str, Any],
    shown: list[str],
    search: Search,
    queued_again: bool,
) -> dict[str, Any]:
    # a trial stopped before its folder was made has no metrics.json to say so
    stopped = "interrupted" if queued_again else trial.state.name.lower()
    status = metrics.get("status") or stopped
    value = (
        trial.value
        if trial.state == TrialState.COMPLETE
        else metrics.get(f"best_{search.cfg.metric}")
    )
    params = " ".join(words_of(trial.params))
    return {
        "trial": trial.number,
        "status": status,
        "value": value,
        **{f"test/{m}": metrics.get(f"test/{m}") for m in shown},
        "epochs": metrics.get("epochs"),
        "params": f"(default) {params}" if trial.user_attrs.get("default") else params,
    }


def best_words(trial: FrozenTrial, search: Search) -> list[str]:
    """The words that train the trial again as an ordinary run, with its seed."""
    seed = compose(search.job).cfg.seed
    return [*search.job, *words_of(trial.params), f"seed={seed}"]


# Below this many validation rows, a search's pick among trials may fit them (a 4-trial
# search on a small table improved val/loss 0.6269 to 0.6242 and lost 0.029 of test
# accuracy). From 200 rows on, one row moves accuracy by 0.005 or less.
SMALL_VAL = 200
# fANOVA importances from fewer finished trials rank noise (Optuna fits a random forest
# on them): about 10 before they are worth reading.
FEW_FOR_IMPORTANCES = 10


def notes(study: optuna.Study, search: Search, found: dict[int, dict[str, Any]]) -> list[str]:
    """What the summary must say beside the winner: its test metrics and the default's,
    a small validation split, too few trials for importances. `found`: each trial's
    metrics.json."""
    best = study.best_trial
    mine = found.get(best.number, {})
    lines = [f"best trial {best.number}: {search.cfg.metric} {best.value:.4g}{_tests(mine)}"]
    return lines + _against_default(study, search, found) + _cautions(study, mine)


def _against_default(
    study: optuna.Study, search: Search, found: dict[int, dict[str, Any]]
) -> list[str]:
    """The default job's trial beside the winner, and whether the winner is worse on test."""
    default, best = _default(study), study.best_trial
    if default is None:
        outside = default_params(search)[1]
        why = f"{', '.join(outside)} outside the space" if outside else "none has finished"
        return [f"no trial of the default job to compare with: {why}"]
    if default.number == best.number:
        return ["the best trial is the default job: the search found nothing better"]
    theirs = found.get(default.number, {})
    shown = f"{search.cfg.metric} {default.value:.4g}{_tests(theirs)}"
    worse = _worse_on_test(found.get(best.number, {}), theirs)
    return [f"the default (trial {default.number}): {shown}", *worse]


def _cautions(study: optuna.Study, best: dict[str, Any]) -> list[str]:
    """A validation split small enough to be fitted by the pick among trials, and
    importances from too few finished trials. `best`: the winner's metrics.json."""
    trials, lines = study.get_trials(deepcopy=False), []
    rows = best.get("val_rows")
    if isinstance(rows, int) and rows < SMALL_VAL:
        compared = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        lines.append(
            f"the validation split has {rows} rows: the winner of {compared} trials "
            f"may be fitted to them; confirm it on other rows (data.folds=5) before trusting it"
        )
    finished = sum(t.state == TrialState.COMPLETE for t in trials)
    if finished < FEW_FOR_IMPORTANCES:
        lines.append(
            f"importances.png comes from {finished} finished trials: too few to trust "
            f"(about {FEW_FOR_IMPORTANCES} or more)"
        )
    return lines


def _default(study: optuna.Study) -> FrozenTrial | None:
    """The finished trial of the job as it is (`enqueue_default`), if there is one."""
    return next(
        (
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("default")
        ),
        None,
    )


def _tests(metrics: dict[str, Any]) -> str:
    shown = [
        f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/") and k != "test/loss"
    ]
    return f", {', '.join(shown)}" if shown else ""


def _worse_on_test(best: dict[str, Any], default: dict[str, Any]) -> list[str]:
    """A line when the search's winner is worse on test than the default (beyond a tie)."""
    rows = best.get("test_rows")
    for name in HEADLINE:
        mine, theirs = best.get(f"test/{name}"), default.get(f"test/{name}")
        if not isinstance(mine, float) or not isinstance(theirs, float):
            continue
        if outcome(mine, theirs, row_step(name, rows))[0] == "baseline":
            return [
                f"the winner on {name} is worse on test than the default: test/{name} "
                f"{mine:.4f} against {theirs:.4f}; its better validation value may not last"
            ]
    return []


def _write_best(study: optuna.Study, search: Search, found: dict[int, dict[str, Any]]) -> None:
    """best.yaml: the winner (its value, test metrics, parameters, the words that train
    it again), the default job's trial beside it, and the notes the summary prints."""
    trial, metric = study.best_trial, search.cfg.metric
    words = best_words(trial, search)
    header = (
        f"# The best trial of search {search.name}: trial {trial.number}, "
        f"best {metric} {trial.value:.6g}. Train it again as an ordinary run:\n"
        f"#   litlab train {' '.join(words)}\n"
    )

    def entry(t: FrozenTrial) -> dict[str, Any]:
        tests = {k: v for k, v in found.get(t.number, {}).items() if k.startswith("test/")}
        return {"trial": t.number, "value": t.value, "test": tests}

    default = _default(study)
    body = {**entry(trial), "params": trial.params, "words": words}
    body |= {"default": entry(default) if default else None, "notes": notes(study, search, found)}
    (search.folder / "best.yaml").write_text(header + yaml.safe_dump(body, sort_keys=False))


def _figures(study: optuna.Study, folder: Path, finished: int) -> None:
    """Optuna's optimisation history and parameter importances, as PNG in the folder
    (importances need two finished trials that differ; from fewer than
    FEW_FOR_IMPORTANCES the picture's title says not to trust them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, plot in (
            ("history", vis.plot_optimization_history),
            ("importances", vis.plot_param_importances),
        ):
            with contextlib.suppress(ValueError, RuntimeError, ZeroDivisionError):
                axes = plot(study)
                if name == "importances":
                    caution(axes, finished)
                axes.figure.savefig(folder / f"{name}.png", bbox_inches="tight")
            plt.close("all")


def caution(axes: Any, finished: int) -> None:
    """Under the importances' title, when fewer than FEW_FOR_IMPORTANCES trials finished:
    too few to trust. Optuna titles the plot on the left; a centred title would overlap."""
    if finished < FEW_FOR_IMPORTANCES:
        title = axes.get_title(loc="left")
        axes.set_title(f"{title}\nfrom {finished} finished trials: too few to trust", loc="left")


if __name__ == "__main__":  # a worker: python -m litlab.search FOLDER SLOT
    optuna.logging.set_verbosity(optuna.logging.INFO)
    sys.exit(work(Path(sys.argv[1]), int(sys.argv[2])))
