"""Shared fixtures: compose the real configs, with runs written under a temporary folder."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from litlab.config import SourcedConfig
from litlab.rundirs import compose

PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def pytest_configure() -> None:
    """Make this process (each xdist worker is its own) adopt the orphans of the
    processes its tests start: a launcher killed before its workers (torchrun's, or
    Lightning's DDP ranks) leaves them here, where `no_process_left` finds them."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)


def descendants(pid: int, keep: Set[int] = frozenset()) -> list[int]:
    """Every live or unreaped process under `pid`, each before its children, except those
    in `keep` and under them; read from /proc, so children of any thread count too (and
    torchrun's workers, which live in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            ppid = stat.read_text().rpartition(")")[2].split()[1]  # after "pid (name) state"
            children.setdefault(int(ppid), []).append(int(stat.parent.name))
    found, todo = [], [child for child in children.get(pid, []) if child not in keep]
    while todo:
        found.append(child := todo.pop(0))
        todo += [grandchild for grandchild in children.get(child, []) if grandchild not in keep]
    return found


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of `pids`, then reap those that are (or have become) our children."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@pytest.fixture(autouse=True)
def no_process_left() -> Iterator[None]:
    """Whatever a test starts is killed when it ends, passed or failed, with all that it
    started in turn; what broader fixtures started before it (a server) is left alone."""
    before = set(descendants(os.getpid()))
    yield
    kill_all(descendants(os.getpid(), keep=before))


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., SourcedConfig]:
    """compose(words) with runs under tmp_path: make_config("experiment=seed", "seed=3").
    No boundary snapshots unless a word names the dashboard: drawing ten of them takes a
    second, most of a short run; the tests of the pictures ask for them."""

    def make(*words: str) -> SourcedConfig:
        composed = compose([f"runs_dir={tmp_path / 'runs'}", *words])
        dashboard = OmegaConf.select(composed.cfg, "callbacks.dashboard")
        if dashboard is not None and not any("dashboard" in word for word in words):
            dashboard.every_n_epochs = None
        return composed

    return make


def load_net(net: torch.nn.Module, checkpoint: Path) -> dict[str, torch.Tensor]:
    """Load the network's weights from a Lightning checkpoint, as plain torch would;
    return the module's whole state dict (buffers too)."""
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    return state


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in a run's TensorBoard events as (step, value) pairs."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def owner(run_dir: Path) -> int | None:
    """The pid of the process that owns `run_dir` now (rundirs.lock_run_dir); None if none."""
    import fcntl

    try:
        fd = os.open(run_dir / ".lock", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
    return None


HOLD = """
import sys
from pathlib import Path
from litlab.rundirs import lock_run_dir
lock_run_dir(Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()
"""


@contextmanager
def held_elsewhere(folder: Path) -> Iterator[int]:
    """`folder` owned (rundirs.lock_run_dir) by another process, whose pid is given, until
    the block ends; the process is killed however the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"
        yield holder.pid
    finally:
        holder.kill()  # the lock goes with the process
        holder.wait()


TASKS = ("circles", "diabetes", "digits", "cancer")  # the README task table's columns
NUMBER = r"-?\d+\.\d+"


def check_task_cell(task: str, metrics: dict[str, Any]) -> None:
    """The README task table's test-metric cell of `task` against a run of its command:
    what scripts/task_table.py prints for it. The baselines' figures as written
    (scikit-learn's fits are exact); the network's within one test row for accuracy, 0.005
    for R2, since float rounding on another CPU can move a prediction."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from task_table import METRIC, cell

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| test metric")]
    shown = dict(zip(TASKS, [c.strip() for c in row.strip(" |").split("|")][1:], strict=True))
    written, measured = shown[task], cell(metrics, METRIC[task])
    assert re.sub(NUMBER, "#", written) == re.sub(NUMBER, "#", measured), (written, measured)
    (mine, *baselines), (theirs, *fitted) = (
        [float(n) for n in re.findall(NUMBER, text)] for text in (written, measured)
    )
    rows = metrics.get("test_rows") if METRIC[task] == "acc" else None
    assert abs(mine - theirs) <= (1 / rows if rows else 0.005) + 0.0005, (written, measured)
    assert baselines == fitted, (written, measured)
