"""The Makefile's servers listen where the project's own variable says, never where a
shell's HOST (often the machine's name) happens to point, and serve what the runs wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def hosts(target: str, **variables: str) -> list[str]:
    """The --host of each command `make -n target` would run, with `variables` in the
    environment."""
    env = os.environ | variables
    out = subprocess.run(
        ["make", "-n", target], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    words = out.split()
    return [words[i + 1] for i, word in enumerate(words) if word == "--host"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
@pytest.mark.parametrize("target", ["tensorboard", "search-dashboard", "mlflow-ui"])
def test_servers_listen_on_loopback_whatever_host_says(target):
    assert hosts(target, HOST="build-box-17") == ["127.0.0.1"]
    assert hosts(target, HOST="build-box-17", LITLAB_HOST="0.0.0.0") == ["0.0.0.0"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_mlflow_ui_serves_the_store_logger_mlflow_writes_to():
    from litlab.config import compose

    out = subprocess.run(["make", "-n", "mlflow-ui"], cwd=ROOT, capture_output=True, text=True)
    words = out.stdout.split()
    store = words[words.index("--backend-store-uri") + 1]
    assert store == compose(["logger=mlflow", "runs_dir=runs"]).cfg.logger.mlflow.tracking_uri
