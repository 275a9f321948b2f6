"""scripts/bench.py --quick runs every section and reports every target (no speed asserted:
that is the full benchmark's business, on a quiet machine)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = {  # bench.json key -> what the printed heading names
    "lesson_job": "1. lesson's job",
    "full_batch": "2. full batch",
    "mini_batch": "3. mini-batch 64",
    "whole_process": "4. whole process",
    "memory": "5. peak memory",
    "gpu": "6. GPU",
    "knobs": "7. knob costs",
    "ddp": "8. DDP",
}


def numbers(tree: Any, key: str) -> list[float]:
    """Every value stored under `key` anywhere in `tree`."""
    if not isinstance(tree, dict):
        return []
    found = [tree[key]] if key in tree else []
    return found + [n for value in tree.values() for n in numbers(value, key)]


@pytest.mark.slow
def test_quick_bench_measures_every_target(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "scripts/bench.py", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    for section, heading in SECTIONS.items():
        assert f"== {heading}" in done.stdout
        assert section in results
    assert {"torch", "lightning", "cpu_count", "date"} <= set(results["machine"])

    # Times, sizes and ratios are positive; only the memory a short fit adds may be ~0.
    growth = results["memory"].pop("growth")
    growth_medians = numbers(growth, "median")
    assert growth_medians and all(math.isfinite(v) and v >= 0 for v in growth_medians)
    measured = {k: v for k, v in results.items() if k in SECTIONS and k != "gpu"}
    medians, ratios = numbers(measured, "median"), numbers(measured, "ratio")
    assert len(medians) >= 20 and len(ratios) >= 12
    assert all(math.isfinite(v) and v > 0 for v in medians + ratios)

    assert {"5000", "50000"} <= set(results["full_batch"])
    assert {"500", "5000", "flat_in_n"} <= set(results["mini_batch"])
    assert {"lesson_vs_train", "help", "config_error"} <= set(results["whole_process"])
    assert len(results["knobs"]) == 9  # the default and eight knobs
    if results["gpu"]["measured"]:
        assert numbers(results["gpu"], "steps_per_s")
    else:
        assert "no GPU on this machine: GPU targets not measured" in done.stdout

    # Every ratio with a target says PASS or MISS, on its own line and in bench.json.
    verdicts = [line for line in done.stdout.splitlines() if "target <=" in line]
    with_target = [t for t in numbers(results, "target") + numbers(growth, "target") if t]
    assert with_target and len(verdicts) == len(with_target)
    assert all(line.endswith(("PASS", "MISS")) for line in verdicts)
