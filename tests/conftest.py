"""Shared fixtures: compose the real configs, with runs written under a temporary folder."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from litlab.config import SourcedConfig
from litlab.rundirs import compose


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., SourcedConfig]:
    """compose(words) with runs under tmp_path: make_config("experiment=seed", "seed=3")."""

    def make(*words: str) -> SourcedConfig:
        return compose([f"runs_dir={tmp_path / 'runs'}", *words])

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
