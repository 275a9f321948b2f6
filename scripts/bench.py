"""Time the lesson's raw PyTorch loop against the template's `experiment=seed`, side by side.

    make bench            # or: .venv/bin/python scripts/bench.py --repeats 5

Per step: the raw loop's time per epoch, and the template's `trainer.fit` time per
epoch (validation every 50 epochs, TensorBoard logging of the training loss and
checkpoints included), interleaved and repeated. Whole process: `scripts/lesson.py`
against `litlab train experiment=seed`, each started fresh. Prints medians, ranges and
ratios, and writes bench.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from lesson import lesson  # noqa: E402

from litlab.config import compose  # noqa: E402
from litlab.train import setup  # noqa: E402

EPOCHS = 1000


def template_step(runs_dir: str) -> float:
    """Seconds per epoch of `trainer.fit` for experiment=seed."""
    run = setup(
        compose(["experiment=seed", f"runs_dir={runs_dir}", f"trainer.max_epochs={EPOCHS}"])
    )
    start = time.perf_counter()
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return (time.perf_counter() - start) / EPOCHS


def whole_process(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def summary(name: str, values: list[float], unit: str, scale: float) -> dict[str, float]:
    med, low, high = (scale * v for v in (statistics.median(values), min(values), max(values)))
    print(f"{name:<34} median {med:8.3f} {unit}  (range {low:.3f}-{high:.3f})")
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    raw, templ, raw_proc, templ_proc = [], [], [], []
    with tempfile.TemporaryDirectory() as runs_dir:
        lesson(epochs=50), template_step(runs_dir)  # warm up: lazy imports, first allocations
        for _ in range(args.repeats):  # interleaved, so drifts of the machine hit both alike
            raw.append(lesson(epochs=EPOCHS)[1])
            templ.append(template_step(runs_dir))
            raw_proc.append(whole_process([sys.executable, "scripts/lesson.py"]))
            templ_proc.append(
                whole_process(
                    [
                        sys.executable,
                        "-m",
                        "litlab",
                        "train",
                        "experiment=seed",
                        f"runs_dir={runs_dir}",
                    ]
                )
            )
    results = {
        "raw_step_s": summary("raw loop, per step", raw, "ms", 1e3),
        "template_step_s": summary("experiment=seed fit, per step", templ, "ms", 1e3),
        "raw_process_s": summary("scripts/lesson.py, whole process", raw_proc, "s", 1),
        "template_process_s": summary("litlab train experiment=seed", templ_proc, "s", 1),
    }
    results["step_ratio"] = statistics.median(templ) / statistics.median(raw)
    results["process_ratio"] = statistics.median(templ_proc) / statistics.median(raw_proc)
    print(f"per-step ratio      {results['step_ratio']:.2f}x  (target <= 2.5x)")
    print(f"whole-process ratio {results['process_ratio']:.2f}x")
    (ROOT / "bench.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
