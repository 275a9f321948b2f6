"""A signal outside the training loop (set-up, baselines, test) ends the run with the
status `interrupted`, what to run next, and the exit code 128 + the signal."""

from __future__ import annotations

import json
import os
import signal

import pytest

import litlab.train
from litlab.cli import main
from litlab.data.circles import CirclesDataModule

TINY = ("trainer.max_epochs=3", "logger=none", "callbacks.dashboard=null")


def send(signum: int):
    def handler(*_args, **_kwargs):
        os.kill(os.getpid(), signum)  # handled in this (the main) thread before it returns
        raise AssertionError("the signal was not taken")

    return handler


def status(runs) -> dict:
    (path,) = runs.rglob("metrics.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("signum", "where", "phase"),
    [
        (signal.SIGTERM, (CirclesDataModule, "baselines"), "while the baselines were fitted"),
        (signal.SIGINT, (CirclesDataModule, "baselines"), "while the baselines were fitted"),
        (signal.SIGINT, (litlab.train, "test"), "during the test"),
        (signal.SIGTERM, (litlab.train, "test"), "during the test"),
    ],
)
def test_a_signal_after_training_leaves_a_resumable_interrupted_run(
    tmp_path, monkeypatch, capsys, signum, where, phase
):
    runs = tmp_path / "runs"
    with monkeypatch.context() as patch:
        patch.setattr(*where, send(signum))
        assert main(["train", f"runs_dir={runs}", *TINY]) == 128 + signum
    (run_dir,) = (runs / "circles").iterdir()
    err = capsys.readouterr().err
    assert f"litlab: {signal.Signals(signum).name}: stopped {phase}; " in err
    assert f'Continue it with: make train ARGS="resume={run_dir}"' in err
    assert "Traceback" not in err
    assert status(runs)["status"] == "interrupted"
    assert main(["train", f"resume={run_dir}"]) == 0
    finished = status(runs)
    assert finished["status"] == "finished" and finished["epochs"] == 3


def test_a_sigterm_before_the_first_step_says_nothing_was_kept(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    monkeypatch.setattr(litlab.train.dashboard, "log_start", send(signal.SIGTERM))
    assert main(["train", f"runs_dir={runs}", *TINY]) == 128 + signal.SIGTERM
    (run_dir,) = (runs / "circles").iterdir()
    err = capsys.readouterr().err
    assert f"SIGTERM: stopped before the first step; nothing was kept in {run_dir}" in err
    assert status(runs)["status"] == "interrupted"
    assert not (run_dir / "checkpoints").exists()
