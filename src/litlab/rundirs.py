"""Run folders: claimed and locked by one process, the config a resumed one ran with, and
`metrics.json`, which says how a run ended. Free of torch at import (the command line
composes through `compose`)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from litlab import config
from litlab.config import CLI, SourcedConfig
from litlab.distributed import from_rank_zero, is_rank_zero, slurm_job
from litlab.errors import ConfigError, RunBusy
from litlab.trust import read_config_file

RUN_DIR_VARIABLE = "LITLAB_RUN_DIR"  # rank 0's run folder, for the processes DDP starts
LOCK = ".lock"  # flock'ed by the owner while it runs; holds its pid
# A logger's own runs, a folder each: wandb-core links its log in one; a resume starts another.
LOGGER_RUNS = ("wandb",)
UNNAMED = ("runs_dir", "name", "resume", "experiment")  # words a run's folder name leaves out
MAX_LABEL = 60  # characters of the folder name after the timestamp
_held: dict[Path, int] = {}  # run folders this process owns -> the lock file's descriptor


def compose(words: list[str], trust: bool = False) -> SourcedConfig:
    """config.compose(words); with `resume=FOLDER`, that run's config.yaml (plain data,
    its targets checked unless `trust`) changed by the words' `a.b=value`."""
    picked, dotted = config.parse_words(words)
    resume = [w.partition("=")[2] for w in dotted if w.lstrip("+").startswith("resume=")]
    if not resume or resume[-1] in ("null", ""):
        return config.compose(words)
    if picked:
        groups = " ".join(f"{group}={option}" for group, option in picked.items())
        raise ConfigError(
            [f"{groups} ({CLI}): a resumed run keeps its groups; change keys (a.b=value)"]
        )
    stored = Path(resume[-1]).expanduser() / "config.yaml"

    def read() -> dict[str, Any]:
        if not stored.is_file():
            raise ConfigError([f"resume={resume[-1]} ({CLI}): no run there (no config.yaml)"])
        return read_config_file(stored)

    # rank 0 reads: the other machines of a job may have no such folder
    composed = config.stored_config(from_rank_zero(read), {}, str(stored), trust)
    try:  # the stored config is resolved: only the words can fail to resolve
        changes = OmegaConf.from_dotlist(dotted)
        composed.cfg = OmegaConf.merge(composed.cfg, changes)
        OmegaConf.resolve(composed.cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError([f"{' '.join(dotted)} ({CLI}): {exc}"]) from None
    composed.sources |= dict.fromkeys(config.leaf_keys(changes), CLI)
    return composed


def run_root(composed: SourcedConfig) -> Path:
    """<runs_dir>/<name>, the name defaulting to the data option, or to the class of a
    data._target_ given on the command line (`moons` for mydata.Moons)."""
    cfg = composed.cfg
    name = cfg.name or composed.choices["data"]
    if not cfg.name and composed.source("data._target_") == CLI:
        name = str(cfg.data._target_).rpartition(".")[2].lower()
    return Path(cfg.runs_dir).expanduser() / name


def run_label(words: list[str]) -> str:
    """What the command line changed, for the folder name, filesystem-safe and short:
    `optimizer=sgd_lr=0.5` for `optimizer=sgd optimizer.lr=0.5` (a key by its last part,
    a `_target_` by its group's name, a path by its file's name)."""
    parts = []
    for word in words:
        key, _, value = word.partition("=")
        if key.lstrip("~") in UNNAMED or not value:
            continue
        names = key.lstrip("+~").split(".")
        name = names[-2] if names[-1] == "_target_" and len(names) > 1 else names[-1]
        value = re.sub(r"[\[\]{}'\" ]", "", value.rstrip("/").rpartition("/")[2])  # [8, 8] -> 8,8
        parts.append(f"{name}={value}")
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "-", "_".join(parts)).strip("-")[:MAX_LABEL]


def open_run_dir(composed: SourcedConfig, run_dir: Path | None) -> Path:
    """The run's folder: `run_dir` (made if missing: a fold) or a new timestamped one
    (under SLURM named by the job, for its requeue to find). Rank 0 makes it and names it
    to the processes Lightning starts; other ranks only name it."""
    if not is_rank_zero():
        return Path(
            os.environ.get(RUN_DIR_VARIABLE) or run_dir or run_root(composed) / "not-rank-zero"
        )
    if run_dir is None:
        job = slurm_job()
        stem = f"slurm-{job}" if job else None
        run_dir = claim_run_dir(run_root(composed), run_label(composed.words), stem)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_run_dir(run_dir)
        refuse_links(run_dir)
    os.environ[RUN_DIR_VARIABLE] = str(run_dir)  # inherited by the processes DDP starts
    return run_dir


def claim_run_dir(parent: Path, label: str = "", stem: str | None = None) -> Path:
    """Make and lock `<parent>/<YYYY-MM-DD_HH-MM-SS>[_<label>]` (or `<parent>/<stem>`)
    with an atomic `mkdir`; runs started in the same second get `_1`, `_2`..."""
    stamp = stem or datetime.now().strftime("%Y-%m-%d_%H-%M-%S") + (f"_{label}" if label else "")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        run_dir = parent / (stamp if attempt == 0 else f"{stamp}_{attempt}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        lock_run_dir(run_dir)
        return run_dir
    raise RuntimeError(f"{parent}: 1000 runs started in the same second")


def requeued_run(composed: SourcedConfig) -> Path | None:
    """Under SLURM, this job's latest run folder if it can go on (a last.ckpt, and it was
    interrupted or never said how it ended): a requeued job runs its command again."""
    job = slurm_job()
    if job is None:
        return None
    root, latest = run_root(composed), None
    for attempt in range(1000):
        run_dir = root / (f"slurm-{job}" + (f"_{attempt}" if attempt else ""))
        if not run_dir.is_dir():
            break
        latest = run_dir
    if latest is None or not (latest / "checkpoints" / "last.ckpt").is_file():
        return None
    return latest if read_status(latest) in (None, "interrupted") else None


def lock_run_dir(run_dir: Path) -> None:
    """Own `run_dir` until `release_run_dir` or the process ends (a `flock` on its .lock,
    which the OS drops however the process ends); RunBusy naming the owner's pid."""
    key, lock = run_dir.resolve(), run_dir / LOCK
    if key in _held:  # this process owns it already (resume= locks before prepare)
        return
    if lock.is_symlink():
        raise OSError(errno.ELOOP, f"{lock} is a link; litlab never writes through one")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunBusy(
            f"{run_dir}: in use by process {pid}; a run folder is written by one process "
            "at a time: wait for it to end (or stop it) and try again"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[key] = fd


def release_run_dir(run_dir: Path) -> None:
    fd = _held.pop(run_dir.resolve(), None)
    if fd is not None:
        os.close(fd)


def subfolder(run_dir: Path, name: str) -> Path:
    """`run_dir/name`, made if missing, refused when it is a link."""
    folder = run_dir / name
    folder.mkdir(exist_ok=True)
    if folder.is_symlink():
        raise OSError(errno.ELOOP, f"{folder} is a link; litlab never writes through one")
    return folder


def refuse_links(run_dir: Path) -> None:
    """A run folder written again (resume=, a fold) must hold no link, but inside a
    logger's own old runs: Lightning and TensorBoard open their files through links."""
    for path in sorted(run_dir.rglob("*")):
        inside = path.relative_to(run_dir).parts
        if path.is_symlink() and not (len(inside) > 2 and inside[0] in LOGGER_RUNS):
            raise ConfigError(
                [
                    f"{path}: a link inside run folder {run_dir}; litlab never writes through "
                    "a link: remove it, or copy the run without links"
                ]
            )


def remove_empty(run_dir: Path, runs_dir: Path) -> None:
    """Remove a run folder nothing was written to, and its empty parents up to `runs_dir`."""
    if not is_rank_zero():
        return
    release_run_dir(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:
        if not parent.is_relative_to(runs_dir):
            return
        try:
            parent.rmdir()
        except OSError:  # not empty
            return


def write_json(path: Path, values: dict[str, Any]) -> None:
    """`values` as indented JSON, written atomically, by rank 0 only."""
    from litlab.checkpoints import write_text  # torch: only once a run writes

    if is_rank_zero():
        write_text(path, json.dumps(values, indent=2) + "\n")


def write_status(run_dir: Path, status: str, **details: Any) -> None:
    """metrics.json: how the run ended (`finished`, `interrupted`, `diverged`, `failed`),
    its metrics or the reason, and the checkpoint to go on from."""
    if status != "finished" and (run_dir / "checkpoints" / "last.ckpt").exists():
        details["last_good_checkpoint"] = "checkpoints/last.ckpt"
    write_json(run_dir / "metrics.json", {"status": status, **details})


def read_status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def metric_spread(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, sample standard deviation (0 for one) and values of each numeric metric over
    runs (the folds of a cross-validation, the seeds of a sweep's setting)."""
    spread = {}
    for key in [k for k, v in results[0].items() if isinstance(v, float)]:
        values = [r[key] for r in results]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        spread[key] = {"mean": statistics.fmean(values), "std": std, "values": values}
    return spread
