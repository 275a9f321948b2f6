"""`litlab sweep [-j N] WORDS`: a grid of runs from comma-separated values, Hydra's way.

`optimizer=sgd,adam seed=1,2,3` is six runs. They go under one sweep folder named after
the words, each in its own process (so one that fails cannot take the others down), `-j`
at a time. Running the same sweep again skips the runs that finished. At the end a table,
also written as sweep_summary.csv, ranks the settings by the monitored metric, with the
mean and standard deviation over seeds when `seed` is swept.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from litlab.check import check
from litlab.config import ConfigError, compose


def grid(words: list[str]) -> list[list[str]]:
    """Every combination of the comma-separated values (a YAML list `[a,b]` is one value)."""
    axes = []
    for word in words:
        key, _, value = word.partition("=")
        many = "," in value and not value.lstrip().startswith("[")
        axes.append([f"{key}={v}" for v in value.split(",")] if many else [word])
    return [list(combination) for combination in itertools.product(*axes)]


def sweep(words: list[str], jobs: int = 1) -> tuple[Path, list[dict[str, Any]]]:
    """Run the grid of `words` (checked whole before anything runs); return the sweep
    folder and the summary rows, best first."""
    runs = grid(words)
    swept = [w.partition("=")[0] for w in words if len(grid([w])) > 1]
    checked = [_check(run) for run in runs]
    first = checked[0].cfg
    folder = Path(first.runs_dir).expanduser() / "sweeps" / _name(words)
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(run, folder / _run_id(run, swept)) for run in runs]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        failures = [f for f in pool.map(lambda item: _run(*item), todo) if f]
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    monitor, mode = first.callbacks.checkpoint.monitor, first.callbacks.checkpoint.mode
    rows = summarise([(run, _metrics(path)) for run, path in todo], swept, f"best_{monitor}", mode)
    _write_csv(folder / "sweep_summary.csv", rows)
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


def _run(words: list[str], folder: Path) -> str | None:
    """Train one run in its own process; the reason it failed, or None."""
    if _metrics(folder) is not None:
        return None  # finished by an earlier sweep
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "litlab", "train", *words, f"runs_dir={folder}", "name=run"]
    with open(folder / "output.log", "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        last = (folder / "output.log").read_text().strip().splitlines()[-1:]
        return f"{' '.join(words)} (exit {code}; {folder / 'output.log'}): {''.join(last)}"
    return None


def _metrics(folder: Path) -> dict[str, Any] | None:
    found = sorted(folder.glob("run/*/metrics.json"))
    return json.loads(found[-1].read_text()) if found else None


def summarise(
    results: list[tuple[list[str], dict[str, Any] | None]], swept: list[str], key: str, mode: str
) -> list[dict[str, Any]]:
    """One row per setting (the swept words but seed), its runs' metrics as mean ± std,
    ranked by `key` (`mode` min or max); failed runs are counted, not averaged."""
    settings: dict[str, list[dict[str, Any] | None]] = {}
    for words, metrics in results:
        setting = " ".join(
            w for w in words if w.partition("=")[0] in swept and not w.startswith("seed=")
        )
        settings.setdefault(setting or "(all)", []).append(metrics)
    rows = []
    for setting, runs in settings.items():
        done = [m for m in runs if m is not None]
        row: dict[str, Any] = {
            "setting": setting,
            "runs": len(done),
            "failed": len(runs) - len(done),
        }
        for name in [k for k, v in (done[0] if done else {}).items() if isinstance(v, float)]:
            values = [m[name] for m in done]
            row[name] = statistics.mean(values)
            row[f"{name} std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    sign = 1 if mode == "min" else -1
    return sorted(rows, key=lambda r: sign * r[key] if key in r else float("inf"))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
