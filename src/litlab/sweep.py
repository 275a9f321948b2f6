"""`litlab sweep [-j N] WORDS`: a grid of runs from comma-separated values, each in its own
process, `-j` at a time; the same sweep again skips the finished runs and resumes the others."""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from litlab.check import check
from litlab.children import Child, python_command, run_jobs
from litlab.config import ConfigError
from litlab.devices import gpus_per_job, visible_gpus, worker_environment
from litlab.errors import SweepStopped
from litlab.rundirs import compose, lock_run_dir, metric_spread, read_status, release_run_dir


def grid(words: list[str]) -> list[list[str]]:
    """Every combination of the words' sweeps, read by Hydra's override grammar as `-m`
    reads them (`optimizer=sgd,adam`, `seed=range(1,4)`); a list `[8,8]` is one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser, axes = OverridesParser.create(), []
    for word in words:
        try:
            (override,) = parser.parse_overrides([word])
        except OverrideParseException:  # a value Hydra cannot read is one value (text)
            axes.append([word])
            continue
        key = override.get_key_element()
        sweep = override.is_sweep_override()
        axes.append([f"{key}={v}" for v in override.sweep_string_iterator()] if sweep else [word])
    return [list(combination) for combination in itertools.product(*axes)]


def sweep(words: list[str], jobs: int = 1) -> tuple[Path, list[dict[str, Any]]]:
    """Run the grid of `words`, checked whole first; the sweep folder and the summary rows, best
    first. A signal stops the runs, writes the summary so far and raises SweepStopped."""
    runs, checked = grid(words), []
    for run in runs:
        try:
            checked.append(check(compose(run)).cfg)
        except ConfigError as exc:
            raise ConfigError([f"sweep run {' '.join(run)}: {e}" for e in exc.errors]) from None
    folder = Path(checked[0].runs_dir).expanduser() / "sweeps" / _name(words)
    folder.mkdir(parents=True, exist_ok=True)
    lock_run_dir(folder)  # a second sweep of the folder would train every run again
    try:
        swept = [w.partition("=")[0] for w in words if len(grid([w])) > 1]
        return _run_grid(runs, swept, checked[0], folder, jobs)
    finally:
        release_run_dir(folder)


def _run_grid(
    runs: list[list[str]], swept: list[str], first: DictConfig, folder: Path, jobs: int
) -> tuple[Path, list[dict[str, Any]]]:
    todo = [(run, folder / _run_id(run, swept)) for run in runs]
    pending = [(r, p) for r, p in todo if (_metrics(p) or {}).get("status") != "finished"]
    gpus = visible_gpus()
    per_job = gpus_per_job(first.trainer, len(gpus))
    outcome = run_jobs(
        [Child(_command(run, path), path / "output.log") for run, path in pending],
        jobs,
        lambda slot: worker_environment(slot, per_job, gpus, jobs),
    )
    for (run, path), code in zip(pending, outcome.codes, strict=True):
        if code not in (0, None) and outcome.signal is None:
            log = path / "output.log"
            last = "".join(log.read_text().strip().splitlines()[-1:])
            print(f"failed: {' '.join(run)} (exit {code}; {log}): {last}", file=sys.stderr)
    checkpoint = first.callbacks.checkpoint
    results = [(run, _metrics(path)) for run, path in todo]
    rows = summarise(results, swept, f"best_{checkpoint.monitor}", checkpoint.mode)
    pd.DataFrame(rows).to_csv(folder / "sweep_summary.csv", index=False)
    if outcome.signal is not None:
        code = 128 + int(outcome.signal)
        raise SweepStopped(outcome.signal.name, code, str(folder / "sweep_summary.csv"))
    return folder, rows


def _name(words: list[str]) -> str:
    """The same words name the same folder, so a re-run finds its runs."""
    return hashlib.sha1(" ".join(words).encode()).hexdigest()[:10]


def _run_id(run: list[str], swept: list[str]) -> str:
    return "_".join(w for w in run if w.partition("=")[0] in swept).replace("/", "-") or "run"


def _command(words: list[str], folder: Path) -> list[str]:
    """Train the run in its own process: its last attempt continued when it was interrupted
    and left a checkpoint, else anew (a failed or diverged run starts again)."""
    train, last = python_command("-m", "litlab", "train"), _last_run(folder)
    resumable = last and (last / "checkpoints" / "last.ckpt").is_file()
    if resumable and read_status(last) in ("interrupted", None):
        return [*train, f"resume={last}"]
    return [*train, *words, f"runs_dir={folder}", "name=run"]


def _last_run(folder: Path) -> Path | None:
    return max((p for p in folder.glob("run/*") if p.is_dir()), default=None)


def _metrics(folder: Path) -> dict[str, Any] | None:
    """metrics.json of the run's last attempt (None: it never wrote one)."""
    last = _last_run(folder)
    file = last / "metrics.json" if last else None
    return json.loads(file.read_text()) if file and file.is_file() else None


def summarise(
    results: list[tuple[list[str], dict[str, Any] | None]], swept: list[str], key: str, mode: str
) -> list[dict[str, Any]]:
    """One row per setting (the swept words but seed): its finished runs' metrics as mean and
    std, ranked by `key` (`mode` min or max); interrupted and failed runs are counted."""
    settings: dict[str, list[dict[str, Any]]] = {}
    for words, metrics in results:
        chosen = [w for w in words if w.partition("=")[0] in swept and not w.startswith("seed=")]
        settings.setdefault(" ".join(chosen) or "(all)", []).append(metrics or {})
    rows = []
    for setting, runs in settings.items():
        done = [m for m in runs if m.get("status") == "finished"]
        stopped = sum(m.get("status") == "interrupted" for m in runs)
        row = {"setting": setting, "runs": len(done), "interrupted": stopped}
        row["failed"] = len(runs) - len(done) - stopped
        for name, spread in (metric_spread(done) if done else {}).items():
            row[name], row[f"{name} std"] = spread["mean"], spread["std"]
        rows.append(row)
    sign = 1 if mode == "min" else -1
    return sorted(rows, key=lambda r: sign * r[key] if key in r else float("inf"))
