"""`litlab sweep [-j N] WORDS`: a grid of runs from comma-separated values, Hydra's way.

`optimizer=sgd,adam seed=1,2,3` is six runs. They go under one sweep folder named after
the words, each in its own process (so one that fails cannot take the others down), `-j`
at a time, each worker slot on its own GPUs. Running the same sweep again skips the runs
that finished, resumes those interrupted and reruns those that failed. SIGTERM or Ctrl-C
stops every run (each saves its step) and writes the summary so far; a second sweep of
the same words while one runs is refused in one line. At the end a table, also written
as sweep_summary.csv, ranks the settings by the monitored metric, with the mean and
standard deviation over seeds when `seed` is swept.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from litlab.check import check
from litlab.children import Child, python_command, run_jobs
from litlab.config import ConfigError
from litlab.devices import gpus_per_job, visible_gpus, worker_environment
from litlab.errors import SweepStopped
from litlab.rundirs import compose, lock_run_dir, metric_spread, release_run_dir


def grid(words: list[str]) -> list[list[str]]:
    """Every combination of the words' sweeps, read by Hydra's override grammar, as
    `-m` reads them: `optimizer=sgd,adam`, `seed=range(1,4)`; a list `[8,8]` is one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    axes = []
    for word in words:
        try:
            (override,) = parser.parse_overrides([word])
        except OverrideParseException:  # a value Hydra cannot read is one value (text)
            axes.append([word])
            continue
        if override.is_sweep_override():
            key = override.get_key_element()
            axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            axes.append([word])
    return [list(combination) for combination in itertools.product(*axes)]


def sweep(words: list[str], jobs: int = 1) -> tuple[Path, list[dict[str, Any]]]:
    """Run the grid of `words` (checked whole before anything runs); return the sweep
    folder and the summary rows, best first. A signal stops the runs, writes the summary
    so far and raises SweepStopped."""
    runs = grid(words)
    swept = [w.partition("=")[0] for w in words if len(grid([w])) > 1]
    checked = [_check(run) for run in runs]
    first = checked[0].cfg
    folder = Path(first.runs_dir).expanduser() / "sweeps" / _name(words)
    folder.mkdir(parents=True, exist_ok=True)
    # one sweep of a folder at a time (RunBusy): a second would train every run again
    lock_run_dir(folder)
    try:
        return _run_grid(runs, swept, first, folder, jobs)
    finally:
        release_run_dir(folder)


def _run_grid(
    runs: list[list[str]], swept: list[str], first: DictConfig, folder: Path, jobs: int
) -> tuple[Path, list[dict[str, Any]]]:
    """The runs of the grid that have not finished, `jobs` at a time; the summary."""
    todo = [(run, folder / _run_id(run, swept)) for run in runs]
    pending = [(run, path) for run, path in todo if _status(path) != "finished"]
    gpus = visible_gpus()
    per_job = gpus_per_job(first.trainer, len(gpus))
    outcome = run_jobs(
        [Child(_command(run, path), path / "output.log") for run, path in pending],
        jobs,
        lambda slot: worker_environment(slot, per_job, gpus, jobs),
    )
    for (run, path), code in zip(pending, outcome.codes, strict=True):
        if code not in (0, None) and outcome.signal is None:
            print(f"failed: {_failure(run, path, code)}", file=sys.stderr)
    monitor, mode = first.callbacks.checkpoint.monitor, first.callbacks.checkpoint.mode
    rows = summarise([(run, _metrics(path)) for run, path in todo], swept, f"best_{monitor}", mode)
    write_csv(folder / "sweep_summary.csv", rows)
    if outcome.signal is not None:
        code = 128 + int(outcome.signal)
        raise SweepStopped(outcome.signal.name, code, str(folder / "sweep_summary.csv"))
    return folder, rows


def _check(words: list[str]) -> Any:
    try:
        composed = check(compose(words))
    except ConfigError as exc:
        raise ConfigError([f"sweep run {' '.join(words)}: {e}" for e in exc.errors]) from None
    return composed


def _name(words: list[str]) -> str:
    """The same words name the same folder, so a re-run finds its finished runs."""
    return hashlib.sha1(" ".join(words).encode()).hexdigest()[:10]


def _run_id(run: list[str], swept: list[str]) -> str:
    chosen = [w for w in run if w.partition("=")[0] in swept]
    return "_".join(chosen).replace("/", "-") or "run"


def _command(words: list[str], folder: Path) -> list[str]:
    """Train the run in its own process: continue its last attempt when that was
    interrupted (a signal, a kill) and left a checkpoint, else start it anew (a failed
    or diverged run is tried again from the start)."""
    train = python_command("-m", "litlab", "train")
    last = _last_run(folder)
    resumable = last is not None and (last / "checkpoints" / "last.ckpt").is_file()
    if resumable and _status(folder) in ("interrupted", None):
        return [*train, f"resume={last}"]
    return [*train, *words, f"runs_dir={folder}", "name=run"]


def _failure(words: list[str], folder: Path, code: int) -> str:
    last = (folder / "output.log").read_text().strip().splitlines()[-1:]
    return f"{' '.join(words)} (exit {code}; {folder / 'output.log'}): {''.join(last)}"


def _last_run(folder: Path) -> Path | None:
    found = sorted(p for p in folder.glob("run/*") if p.is_dir())
    return found[-1] if found else None


def _metrics(folder: Path) -> dict[str, Any] | None:
    """metrics.json of the run's last attempt (None: it never wrote one)."""
    last = _last_run(folder)
    if last is None or not (last / "metrics.json").is_file():
        return None
    return json.loads((last / "metrics.json").read_text())


def _status(folder: Path) -> str | None:
    """How the run's last attempt ended: finished, interrupted, diverged, failed, None."""
    return (_metrics(folder) or {}).get("status")


def summarise(
    results: list[tuple[list[str], dict[str, Any] | None]], swept: list[str], key: str, mode: str
) -> list[dict[str, Any]]:
    """One row per setting (the swept words but seed), its finished runs' metrics as
    mean ± std, ranked by `key` (`mode` min or max); interrupted runs (a signal, a kill:
    they resume on a re-run) and failed ones (an error, a divergence, never started)
    are counted, not averaged."""
    settings: dict[str, list[dict[str, Any] | None]] = {}
    for words, metrics in results:
        setting = " ".join(
            w for w in words if w.partition("=")[0] in swept and not w.startswith("seed=")
        )
        settings.setdefault(setting or "(all)", []).append(metrics)
    rows = []
    for setting, runs in settings.items():
        done = [m for m in runs if m is not None and m.get("status") == "finished"]
        stopped = [m for m in runs if m is not None and m.get("status") == "interrupted"]
        row: dict[str, Any] = {
            "setting": setting,
            "runs": len(done),
            "interrupted": len(stopped),
            "failed": len(runs) - len(done) - len(stopped),
        }
        for name, spread in (metric_spread(done) if done else {}).items():
            row[name], row[f"{name} std"] = spread["mean"], spread["std"]
        rows.append(row)
    sign = 1 if mode == "min" else -1
    return sorted(rows, key=lambda r: sign * r[key] if key in r else float("inf"))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """`rows` as a CSV table, with every key any row has as a column."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
