"""scripts/gpu_check.py where torch cannot use a GPU: it says so first, with the command
that fixes it, and exits non-zero without a traceback (the checks need a GPU: they run
on one with `make gpu-check`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402


def test_a_cpu_build_of_torch_is_said_first_with_the_install_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert gpu_check.main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL  GPU: torch {torch.__version__} in {sys.prefix} is a CPU build")
    assert 'make install TORCH="torch==2.13.0 --index-url' in out


@pytest.mark.skipif(torch.version.cuda is not None, reason="torch here is a CUDA build")
def test_the_script_itself_on_a_cpu_build():
    done = subprocess.run(
        [sys.executable, "scripts/gpu_check.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stdout.startswith("FAIL  GPU:") and "is a CPU build" in done.stdout
    assert "Traceback" not in done.stderr + done.stdout
