"""Shared fixtures: compose the real configs, with runs written under a temporary folder."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from litlab.config import Composed, compose


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Composed]:
    """compose(words) with runs under tmp_path: make_config("experiment=seed", "seed=3")."""

    def make(*words: str) -> Composed:
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
