"""What only a machine with a GPU can check, one PASS/FAIL line per check.

    make gpu-check                    # .venv/bin/python scripts/gpu_check.py (under 5 min)

1. The GPU-only tests (tests/test_distributed.py -k gpu).
2. Speed: scripts/bench.py's GPU section (the lesson's job and 500k rows full batch on
   trainer=gpu at 32-true, bf16-mixed and 16-mixed, against a raw CUDA loop timed the
   same way), one repeat.
3. trainer=ddp over every visible GPU (NCCL): one run folder, and test metrics equal to
   those of one process evaluating the same checkpoint.
4. A GPU run stopped by SIGTERM and resumed ends with the weights of a run never stopped.
5. `litlab eval` of a GPU checkpoint with trainer.accelerator=cpu.

Every check runs even when one before it failed; the exit status is the number of
checks that failed (2 when torch cannot use a GPU at all, which is said first).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
LITLAB = [sys.executable, "-m", "litlab"]
INSTALL = 'rm -rf .venv && make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu<version>"'
SHORT = ["trainer.max_epochs=40", "trainer.check_val_every_n_epoch=10"]
Check = Callable[[Path], str]  # returns what it found; raises Failed when it is wrong


class Failed(Exception):
    """A check that ran and found something wrong."""


def no_gpu() -> str | None:
    """Why torch cannot use a GPU here, with what to do; None when it can."""
    if torch.version.cuda is None:
        return (
            f"torch {torch.__version__} in {sys.prefix} is a CPU build: it cannot use a GPU. "
            "A .venv made on a machine without a GPU stays CPU-only; on this machine run\n"
            f"      {INSTALL}\n"
            "  (<version>: the CUDA version nvidia-smi shows, e.g. 126), then make gpu-check."
        )
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, but sees no GPU "
            "(nvidia-smi: is one there? CUDA_VISIBLE_DEVICES?)"
        )
    return None


def run(command: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise Failed(f"{' '.join(command[:6])} ... exited {done.returncode}:\n{tail}")
    return done


def train(tmp: Path, *words: str) -> Path:
    """`litlab train WORDS` with runs under `tmp`; the folder of the run it made."""
    runs = tmp / "runs"
    before = set(runs.glob("*/*"))
    run([*LITLAB, "train", f"runs_dir={runs}", *words], cwd=ROOT)
    (made,) = set(runs.glob("*/*")) - before
    return made


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def gpu_tests(_: Path) -> str:
    done = run(
        [sys.executable, "-m", "pytest", "-q", "tests/test_distributed.py", "-k", "gpu"], ROOT
    )
    return done.stdout.strip().splitlines()[-1]


def speed(tmp: Path) -> str:
    output = tmp / "bench.json"
    run(
        [
            sys.executable,
            "scripts/bench.py",
            "--only",
            "gpu",
            "--repeats",
            "1",
            "--output",
            str(output),
        ],
        ROOT,
        300,
    )
    cases = {k: v for k, v in json.loads(output.read_text())["gpu"].items() if isinstance(v, dict)}
    lines = []
    for name, case in cases.items():
        steps = {side: case[side]["steps_per_s"] for side in ("raw", "template")}
        if not all(math.isfinite(s) and s > 0 for s in steps.values()):
            raise Failed(f"{name}: {steps}")
        lines.append(
            f"{name}: {steps['template']:.0f} steps/s, raw {steps['raw']:.0f} "
            f"(step {case['ratio']:.2f}x the raw one)"
        )
    return "\n      ".join(lines)


def ddp(tmp: Path) -> str:
    from litlab.predict import evaluate_checkpoint

    gpus = torch.cuda.device_count()
    run_dir = train(tmp, "trainer=ddp", f"trainer.devices={gpus}", *SHORT)
    if len(list(run_dir.parent.iterdir())) != 1:
        raise Failed(f"{run_dir.parent}: more than one run folder")
    found = metrics(run_dir)
    reference = evaluate_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    wrong = {
        k: (found[k], v)
        for k, v in reference.items()
        if not math.isclose(found[k], v, abs_tol=1e-5)
    }
    if wrong:
        raise Failed(f"DDP's test metrics differ from one process's (ddp, single): {wrong}")
    return f"{gpus} GPU(s): one run folder, test metrics = one process's ({len(reference)} metrics)"


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def sigterm_resume(tmp: Path) -> str:
    words = [
        "trainer=gpu",
        "trainer.deterministic=true",
        "data.batch_size=8",
        "trainer.max_epochs=60",
        "trainer.check_val_every_n_epoch=30",
    ]
    runs, log = tmp / "runs-signal", tmp / "signal.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*LITLAB, "train", f"runs_dir={runs}", *words], cwd=ROOT, stderr=stderr
        )
        deadline = time.monotonic() + 120
        while (
            "epoch/s" not in log.read_text()
            and time.monotonic() < deadline
            and process.poll() is None
        ):
            time.sleep(0.1)  # the progress bar: training has started
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    if code != 128 + signal.SIGTERM:
        raise Failed(f"exit status {code}, not {128 + signal.SIGTERM}:\n{log.read_text()[-2000:]}")
    (stopped,) = (runs / "circles").iterdir()
    step = torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    run([*LITLAB, "train", f"resume={stopped}"], ROOT)
    straight = train(tmp, *words)
    differ = [k for k, v in weights(straight).items() if not torch.equal(weights(stopped)[k], v)]
    if differ:
        raise Failed(
            f"stopped after step {step}, resumed: weights differ from a straight run's: {differ}"
        )
    return f"stopped after step {step}, resumed: the weights of a run never stopped"


def eval_on_cpu(tmp: Path) -> str:
    run_dir = train(tmp, "trainer=gpu", *SHORT)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    run([*LITLAB, "eval", str(checkpoint), "trainer.accelerator=cpu"], ROOT)
    found, expected = json.loads(checkpoint.with_suffix(".eval.json").read_text()), metrics(run_dir)
    wrong = {
        k: (v, expected[k])
        for k, v in found.items()
        if not math.isclose(v, expected[k], abs_tol=1e-5)
    }
    if wrong:
        raise Failed(f"eval on the CPU differs from the run's test metrics: {wrong}")
    return "the GPU run's test metrics, on the CPU"


CHECKS: dict[str, Check] = {
    "GPU-only tests": gpu_tests,
    "speed (bench.py's GPU section)": speed,
    "trainer=ddp over every GPU": ddp,
    "SIGTERM, then resume=, on the GPU": sigterm_resume,
    "eval of a GPU checkpoint on the CPU": eval_on_cpu,
}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    why = no_gpu()
    if why:
        print(f"FAIL  GPU: {why}", flush=True)
        return 2
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}",
        flush=True,
    )
    failed = 0
    with tempfile.TemporaryDirectory() as folder:
        for name, check in CHECKS.items():
            start = time.monotonic()
            try:
                found, verdict = check(Path(tempfile.mkdtemp(dir=folder))), "PASS"
            except Exception as exc:  # every check runs, whatever the one before it did
                found, verdict = str(exc), "FAIL"
                failed += 1
            print(f"{verdict}  {name} ({time.monotonic() - start:.0f} s): {found}", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
