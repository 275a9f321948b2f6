"""Time the template against raw PyTorch loops, target by target, side by side.

    make bench                 # .venv/bin/python scripts/bench.py  (5 repeats, a few minutes)
    make bench QUICK=1         # --quick: every section, tiny sizes, 1 repeat (under a minute)
    .venv/bin/python scripts/bench.py --repeats 3 --output /tmp/bench.json

1. The lesson's job (experiment=seed: 500 points, 1000 full-batch epochs, TensorBoard,
   checkpoints): wall time of `trainer.fit` per step against `scripts/lesson.py`'s loop.
2. Full batch at 5k, 50k, 500k rows: steady-state step against a raw full-batch loop.
3. Mini-batches of 64 at 500 ... 500k rows: steady-state step against a raw loop that
   draws one randperm per epoch; and the template's step at the largest n over the smallest.
4. Whole process: scripts/lesson.py against `litlab train experiment=seed`; and
   `litlab --help` and a config error against `python -c "import lightning"`.
5. Peak memory of a 500k-row fit, raw and template each in a fresh process.
6. The GPU, where there is one: steps/s of jobs 1 and 2 (500k) on trainer=gpu, at each
   precision in --precisions, against a raw CUDA loop (fp32).
7. What each knob adds per step to the lesson's job (for the README).
8. DDP on two CPU processes (trainer=ddp_cpu trainer.devices=2): the lesson's job per
   step, against the same job in one process.

Sections 1-5, 7 and 8 run on the CPU (trainer=cpu), where the raw loops run, even on a
machine with a GPU. Steady state is (end of the last step - end of the first) / (steps
- 1), so fit's start-up (sanity check, first allocations) and its end are left out;
target 1 and the whole-process timings include them on purpose. On the GPU both sides
wait for the device at those two ends only, not every step (a wait every step would
time the waiting). Raw and template runs alternate, so a drift of the machine hits both
alike. Prints median and range (min-max) of each case, ratios of medians and PASS/MISS
per target; writes bench.json. `--only gpu ddp` runs the sections named.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from sklearn.datasets import make_circles
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from lesson import Model, lesson  # noqa: E402

# Lightning and litlab are imported inside the functions that use them: the raw side's
# memory child (section 5) must carry bare torch's footprint only.

SEED, DATA_SEED = 0, 123  # train.yaml's seed; circles.yaml's random_state
SEED_JOB = ["experiment=seed"]
CPU = "trainer=cpu"  # the device the raw loops run on, even where there is a GPU
NO_GPU = "no GPU on this machine: GPU targets not measured"
Stats = dict[str, float]


@dataclasses.dataclass(frozen=True)
class Sizes:
    repeats: int
    lesson_epochs: int
    full_batch: dict[int, int]  # rows -> epochs, about a second or two each
    mini_rows: tuple[int, ...]
    mini_steps: int
    memory: tuple[int, int]  # rows, epochs
    knob_epochs: int
    ddp_epochs: int
    precisions: tuple[str, ...] = ("32-true", "bf16-mixed", "16-mixed")


FULL = Sizes(
    repeats=5,
    lesson_epochs=1000,
    full_batch={5_000: 2000, 50_000: 800, 500_000: 80},
    mini_rows=(500, 5_000, 50_000, 500_000),
    mini_steps=2000,
    memory=(500_000, 5),
    knob_epochs=1000,
    ddp_epochs=1000,
)
QUICK = Sizes(  # every section runs; the figures are too short to compare
    repeats=1,
    lesson_epochs=100,
    full_batch={5_000: 50, 50_000: 10},
    mini_rows=(500, 5_000),
    mini_steps=100,
    memory=(20_000, 2),
    knob_epochs=30,
    ddp_epochs=30,
)


# --------------------------------------------------------------------------- the runs


class Clock:
    """The time at the end of the first and of the last of `steps` steps; on the GPU,
    which runs behind the Python that queues its work, it waits for the device there."""

    def __init__(self, steps: int, cuda: bool):
        self.steps, self.cuda = steps, cuda
        self.ends: dict[int, float] = {}

    def tick(self, done: int) -> None:
        """`done` steps are done."""
        if done in (1, self.steps):
            if self.cuda:
                torch.cuda.synchronize()
            self.ends[done] = time.perf_counter()

    def per_step(self) -> float:
        """Seconds per step between the first step's end and the last one's."""
        return (self.ends[self.steps] - self.ends[1]) / (self.steps - 1)


@functools.cache
def circles(n: int) -> tuple[Tensor, Tensor]:
    """The template's training set for data.n_samples=n (holdout=fresh trains on this draw)."""
    x, y = make_circles(n_samples=n, noise=0.2, factor=0.3, random_state=DATA_SEED)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).reshape(-1, 1)


def batches(x: Tensor, y: Tensor, batch_size: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless: the whole set every step, or per epoch one permutation cut into batches."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    while True:
        if batch_size is None:
            yield x, y
            continue
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch_size):
            rows = order[start : start + batch_size]
            yield x[rows], y[rows]


def raw_loop(n: int, steps: int, batch_size: int | None = None, device: str = "cpu") -> float:
    """The lesson's 2-4-1 sigmoid net, BCE and Adam(lr=0.01) for `steps` steps on the
    template's data; steady-state seconds per step."""
    x, y = (t.to(device) for t in circles(n))
    torch.manual_seed(SEED)  # the template's seed_everything: the same initial weights
    model = Model(2, 4, 1).to(device)
    criterion = nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    clock = Clock(steps, device == "cuda")
    for done, (xb, yb) in zip(range(1, steps + 1), batches(x, y, batch_size), strict=False):
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        clock.tick(done)
    return clock.per_step()


def template_fit(words: list[str], runs_dir: str, steady: bool = False) -> float:
    """`trainer.fit` of the job `words`, built as `litlab train` builds it; return its wall
    seconds per step, or with `steady` its steady-state seconds per step."""
    from lightning.pytorch.callbacks import LambdaCallback

    from litlab.config import compose
    from litlab.train import prepare

    run = prepare(compose([*words, f"runs_dir={runs_dir}"]))
    clock = Clock(0, run.trainer.strategy.root_device.type == "cuda")
    if steady:  # only then: each callback costs every hook of every step
        run.trainer.callbacks.append(
            LambdaCallback(
                on_train_start=lambda trainer, _: setattr(
                    clock, "steps", int(trainer.estimated_stepping_batches)
                ),
                on_train_batch_end=lambda trainer, *_: clock.tick(trainer.global_step),
            )
        )
    start = time.perf_counter()
    run.trainer.fit(run.module, datamodule=run.datamodule)
    if steady:
        return clock.per_step()
    return (time.perf_counter() - start) / run.trainer.global_step


def template_steady(words: list[str], runs_dir: str) -> float:
    """Steady-state seconds per step of the job `words`."""
    return template_fit(words, runs_dir, steady=True)


def full_words(n: int, epochs: int, trainer: str = CPU) -> list[str]:
    return [*SEED_JOB, trainer, f"data.n_samples={n}", f"trainer.max_epochs={epochs}"]


def mini_words(n: int, steps: int) -> list[str]:
    words = [f"data.n_samples={n}", "data.batch_size=64", f"trainer.max_steps={steps}"]
    return [*SEED_JOB, CPU, *words]


def interleave(
    raw: Callable[[], float], template: Callable[[], float], repeats: int
) -> tuple[list[float], list[float]]:
    """raw, template, raw, template, ...: a drift of the machine hits both alike."""
    raws, templates = [], []
    for _ in range(repeats):
        raws.append(raw())
        templates.append(template())
    return raws, templates


def seconds(command: list[str], expect: int = 0) -> float:
    """Wall seconds of `command` as a fresh process; it must exit with `expect`."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != expect:  # a timed traceback would be a lie
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}, expected {expect}:\n{done.stderr}"
        )
    return elapsed


# --------------------------------------------------------------------------- reporting


def stats(values: list[float]) -> Stats:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def show(label: str, values: list[float], unit: str) -> Stats:
    """Print and return the median and range; seconds shown in `unit` (ms or s), MB as is."""
    scale = 1e3 if unit == "ms" else 1.0
    s = stats(values)
    low, high = scale * s["min"], scale * s["max"]
    print(f"  {label:<46} {scale * s['median']:10.3f} {unit:<3} ({low:.3f}-{high:.3f})")
    return s


def verdict(label: str, ratio: float, target: float | None) -> dict[str, Any]:
    met = None if target is None else ratio <= target
    tail = "" if target is None else f"   target <= {target}x   {'PASS' if met else 'MISS'}"
    print(f"  -> {label}: {ratio:.2f}x{tail}")
    return {"ratio": ratio, "target": target, "met": met}


def case(
    label: str, raw: list[float], template: list[float], unit: str, target: float | None
) -> dict[str, Any]:
    """Raw and template side by side, and the ratio of their medians against `target`."""
    result = {"raw": show(f"raw       {label}", raw, unit)}
    result["template"] = show(f"template  {label}", template, unit)
    raw_median, template_median = result["raw"]["median"], result["template"]["median"]
    ratio = template_median / raw_median if raw_median else math.inf  # e.g. no growth at all
    return result | verdict(label, ratio, target)


def heading(title: str) -> None:
    print(f"\n== {title}", flush=True)


# --------------------------------------------------------------------------- sections


def warm_up(runs_dir: str) -> None:
    """Lazy imports, first allocations and first-call caches, before any clock runs."""
    lesson(epochs=50)
    template_fit([*SEED_JOB, CPU, "trainer.max_epochs=50"], runs_dir)
    raw_loop(500, 50, batch_size=64)
    template_fit(mini_words(500, 50), runs_dir)


def lesson_job(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    heading(f"1. lesson's job: experiment=seed, {sizes.lesson_epochs} epochs, fit wall / steps")
    words = [*SEED_JOB, CPU, f"trainer.max_epochs={sizes.lesson_epochs}"]
    raw, templ = interleave(
        lambda: lesson(epochs=sizes.lesson_epochs)[1],
        lambda: template_fit(words, runs_dir),
        sizes.repeats,
    )
    return case("lesson job, per step", raw, templ, "ms", 2.3)


def full_batch(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    heading("2. full batch: steady-state step")
    results = {}
    for n, epochs in sizes.full_batch.items():
        raw, templ = interleave(
            lambda n=n, e=epochs: raw_loop(n, e),
            lambda n=n, e=epochs: template_steady(full_words(n, e), runs_dir),
            sizes.repeats,
        )
        target = 1.3 if n >= 50_000 else None
        results[str(n)] = case(f"full batch n={n}", raw, templ, "ms", target)
    return results


def mini_batch(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    heading(f"3. mini-batch 64: steady-state step over {sizes.mini_steps} steps")
    results: dict[str, Any] = {}
    for n in sizes.mini_rows:
        raw, templ = interleave(
            lambda n=n: raw_loop(n, sizes.mini_steps, batch_size=64),
            lambda n=n: template_steady(mini_words(n, sizes.mini_steps), runs_dir),
            sizes.repeats,
        )
        results[str(n)] = case(f"mini-batch n={n}", raw, templ, "ms", 3.0)
    small, large = min(sizes.mini_rows), max(sizes.mini_rows)
    flat = results[str(large)]["template"]["median"] / results[str(small)]["template"]["median"]
    results["flat_in_n"] = verdict(f"template step at n={large} / at n={small}", flat, 1.25)
    return results


def whole_process(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    heading(
        "4. whole process, each started fresh (help: litlab --help, config_error:"
        " litlab train optimizer.lr=oops)"
    )
    python, litlab = sys.executable, [sys.executable, "-m", "litlab"]
    commands = {
        "lesson": ([python, "scripts/lesson.py"], 0),
        "train": ([*litlab, "train", *SEED_JOB, CPU, f"runs_dir={runs_dir}"], 0),
        "help": ([*litlab, "--help"], 0),
        # a config error: answered before Lightning is imported, exit status 2
        "config_error": ([*litlab, "train", "optimizer.lr=oops", f"runs_dir={runs_dir}"], 2),
        "import_lightning": ([python, "-c", "import lightning"], 0),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(sizes.repeats):  # interleaved, as everywhere
        for name, (command, expect) in commands.items():
            times[name].append(seconds(command, expect))
    result = {"lesson_vs_train": case("whole process", times["lesson"], times["train"], "s", 1.5)}
    result["import_lightning"] = show("import lightning", times["import_lightning"], "s")
    for name in ("help", "config_error"):
        result[name] = {"time": show(f"litlab {name}", times[name], "s")}
        ratio = result[name]["time"]["median"] / result["import_lightning"]["median"]
        result[name] |= verdict(f"litlab {name} / import lightning", ratio, 0.5)
    return result


def memory(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    rows, epochs = sizes.memory
    heading(f"5. peak memory (VmHWM), n={rows}, {epochs} full-batch epochs, fresh processes")
    found = {kind: child_memory_run(kind, rows, epochs, runs_dir) for kind in ("raw", "template")}
    peak = [[found[kind]["peak_mb"]] for kind in ("raw", "template")]
    growth = [[found[k]["peak_mb"] - found[k]["after_imports_mb"]] for k in ("raw", "template")]
    result = {"peak": case("peak RSS", *peak, "MB", 2.0)}
    result["growth"] = case("peak growth over RSS after imports", *growth, "MB", None)
    return result


def child_memory_run(kind: str, rows: int, epochs: int, runs_dir: str) -> dict[str, float]:
    command = [sys.executable, "scripts/bench.py", "--child-memory", kind]
    command += ["--rows", str(rows), "--epochs", str(epochs), "--runs-dir", runs_dir]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_memory(kind: str, rows: int, epochs: int, runs_dir: str) -> None:
    """In a fresh process: a short full-batch fit; print its peak RSS and the RSS after
    imports (Lightning's import footprint is not bare torch's) as JSON."""
    if kind == "template":
        import litlab.train  # noqa: F401  (the footprint of what `litlab train` imports)
    # Torch imports more on first use (building Adam pulls in torch._dynamo, ~70 MB) and
    # Lightning has done so already: count that as imports on both sides.
    raw_loop(500, 3)
    after_imports = rss_mb()
    if kind == "raw":
        raw_loop(rows, epochs)
    else:
        template_fit(full_words(rows, epochs), runs_dir)
    print(json.dumps({"after_imports_mb": after_imports, "peak_mb": rss_mb()}))


def rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM). Not ru_maxrss: Linux carries
    that across fork and exec, so a child would start at its parent's peak."""
    status = Path("/proc/self/status")
    if not status.exists():  # not Linux: ru_maxrss (kilobytes there; bytes on macOS)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = next(s for s in status.read_text().splitlines() if s.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


def gpu(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    heading("6. GPU: trainer=gpu against a raw CUDA loop (fp32)")
    if not torch.cuda.is_available():
        print(f"  {NO_GPU}")
        return {"measured": False, "note": NO_GPU}
    largest = max(sizes.full_batch)
    jobs = {"lesson": (500, sizes.lesson_epochs), f"full batch n={largest}": (largest, 200)}
    result: dict[str, Any] = {"measured": True, "device": torch.cuda.get_device_name()}
    for label, (n, epochs) in jobs.items():
        for precision in sizes.precisions:
            words = [*full_words(n, epochs, "trainer=gpu"), f"trainer.precision={precision}"]
            raw, templ = interleave(
                lambda n=n, e=epochs: raw_loop(n, e, device="cuda"),
                lambda w=words: template_steady(w, runs_dir),
                sizes.repeats,
            )
            name = f"{label} {precision}"
            result[name] = case(f"{name} on the GPU, per step", raw, templ, "ms", None)
            for side in ("raw", "template"):
                result[name][side]["steps_per_s"] = 1 / result[name][side]["median"]
            steps = {side: result[name][side]["steps_per_s"] for side in ("raw", "template")}
            print(
                f"     steps/s (medians): raw {steps['raw']:.0f}, template {steps['template']:.0f}"
            )
    return result


KNOBS = [
    "trainer.log_every_n_steps=1",
    "trainer.check_val_every_n_epoch=1",  # and a checkpoint every epoch, by val/loss
    "callbacks.progress_bar.refresh_rate=1",
    "callbacks.progress_bar=null",
    "callbacks.lr_monitor=null",
    "callbacks.dashboard=null",
    "callbacks.checkpoint=null",
    "logger=none",
]


def knobs(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    heading(f"7. knob costs: the lesson's job ({sizes.knob_epochs} epochs), steady-state step")
    words = [*SEED_JOB, CPU, f"trainer.max_epochs={sizes.knob_epochs}"]
    times: dict[str, list[float]] = {knob: [] for knob in ["default", *KNOBS]}
    for _ in range(sizes.repeats):
        for knob in times:
            extra = [] if knob == "default" else [knob]
            times[knob].append(template_steady([*words, *extra], runs_dir))
    result: dict[str, Any] = {"default": show("default", times["default"], "ms")}
    base = result["default"]["median"]
    for knob in KNOBS:
        step = show(knob, times[knob], "ms")
        added = step["median"] - base
        print(f"  {'':<46} {1e3 * added:+10.3f} ms per step ({step['median'] / base:.2f}x)")
        result[knob] = {"step": step, "added_s": added, "ratio": step["median"] / base}
    return result


def ddp(sizes: Sizes, runs_dir: str) -> dict[str, Any]:
    heading(f"8. DDP on 2 CPU processes: the lesson's job ({sizes.ddp_epochs} epochs), steady step")
    words = [*SEED_JOB, f"trainer.max_epochs={sizes.ddp_epochs}", "callbacks.progress_bar=null"]
    one, two = interleave(
        lambda: template_steady([*words, CPU], runs_dir),
        lambda: child_ddp_run(words, runs_dir),
        sizes.repeats,
    )
    result = {"one_process": show("one process (trainer=cpu)", one, "ms")}
    result["ddp_cpu"] = show("trainer=ddp_cpu trainer.devices=2", two, "ms")
    ratio = result["ddp_cpu"]["median"] / result["one_process"]["median"]
    return result | verdict("a ddp_cpu x2 step / one process's", ratio, None)


def child_ddp_run(words: list[str], runs_dir: str) -> float:
    """Lightning starts DDP's second process by running the command again: a child of
    its own, so that it is this small command and not the whole benchmark."""
    command = [sys.executable, "scripts/bench.py", "--child-ddp", *words, "--runs-dir", runs_dir]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds_per_step"]


def child_ddp(words: list[str], runs_dir: str) -> None:
    """In each DDP process: the job on trainer=ddp_cpu x2; rank 0 prints its steady step."""
    seconds_per_step = template_steady([*words, "trainer=ddp_cpu", "trainer.devices=2"], runs_dir)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        print(json.dumps({"seconds_per_step": seconds_per_step}))


# --------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    import lightning

    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),  # another job on the machine skews every number
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def targets(results: dict[str, Any], path: str = "") -> list[str]:
    """One line per measured ratio that has a target, found anywhere in `results`."""
    lines = []
    if results.get("target") is not None:
        state = "PASS" if results["met"] else "MISS"
        lines.append(f"  {state}  {path:<36} {results['ratio']:6.2f}x  (<= {results['target']}x)")
    for key, value in results.items():
        if isinstance(value, dict):
            lines += targets(value, f"{path}.{key}".lstrip("."))
    return lines


SECTIONS = [lesson_job, full_batch, mini_batch, whole_process, memory, gpu, knobs, ddp]


def bench(sizes: Sizes, output: Path, only: list[str] | None = None) -> None:
    import logging

    # Lightning's start-up notices (devices, model summary) once per fit drown the results.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    info = machine()
    print(f"torch {info['torch']}, lightning {info['lightning']}, {info['cpu_count']} CPUs", end="")
    print(f", load average {info['load_average'][0]:.2f}; {sizes.repeats} repeat(s)")
    results: dict[str, Any] = {"machine": info, "sizes": dataclasses.asdict(sizes)}
    with tempfile.TemporaryDirectory() as runs_dir:
        warm_up(runs_dir)
        for section in SECTIONS:
            if only is None or section.__name__ in only:
                results[section.__name__] = section(sizes, runs_dir)
    heading("targets")
    print("\n".join(targets(results)))
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every section, tiny, 1 repeat")
    parser.add_argument("--repeats", type=int, help="runs of each case (default 5; quick 1)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench.json")
    names = [section.__name__ for section in SECTIONS]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these sections")
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISIONS, help="GPU precisions (default: all)"
    )
    child = parser.add_argument_group("internal: section 5 runs this script in a child")
    child.add_argument("--child-memory", choices=["raw", "template"])
    child.add_argument("--rows", type=int, default=FULL.memory[0])
    child.add_argument("--epochs", type=int, default=FULL.memory[1])
    child.add_argument("--runs-dir", default=tempfile.gettempdir())
    child.add_argument("--child-ddp", nargs="+", metavar="WORD", help="section 8's job")
    args = parser.parse_args()
    if args.child_memory:
        child_memory(args.child_memory, args.rows, args.epochs, args.runs_dir)
        return
    if args.child_ddp:
        child_ddp(args.child_ddp, args.runs_dir)
        return
    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        sizes = dataclasses.replace(sizes, repeats=args.repeats)
    if args.precisions:
        sizes = dataclasses.replace(sizes, precisions=tuple(args.precisions))
    bench(sizes, args.output, args.only)


if __name__ == "__main__":
    main()
