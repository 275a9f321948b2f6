"""Ctrl-C or SIGTERM during training: the step is finished and saved, the run says it was
interrupted, and resume= ends with the weights of a run that was never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import scalars

import litlab.train
from litlab.checkpoints import load_checkpoint
from litlab.errors import Interrupted
from litlab.rundirs import compose
from litlab.train import run

MINI_BATCH = (  # 6 shuffled batches an epoch: the order within the epoch must be resumed
    "data.batch_size=64",
    "trainer.max_epochs=10",  # validated (and saved) at the end
    "trainer.check_val_every_n_epoch=5",
    "trainer.log_every_n_steps=5",
    "seed=1",
)
FULL_BATCH = (
    "experiment=seed",
    "trainer.max_epochs=40",
    "trainer.check_val_every_n_epoch=10",
    "trainer.log_every_n_steps=5",
)


class SendSignal(L.Callback):
    """Sends `signum` to this process when `step` steps are done and `when` comes: a
    step starts, the validation starts, or the epoch has ended (after SignalStop has
    looked), as a user or a scheduler would."""

    def __init__(self, step: int, signum: signal.Signals, when: str):
        self.step, self.signum, self.when = step, signum, when

    def _send(self, trainer: L.Trainer, when: str) -> None:
        if trainer.global_step == self.step and self.when == when:
            signal.raise_signal(self.signum)

    def on_train_batch_start(self, trainer: L.Trainer, *_: object) -> None:
        self._send(trainer, "step")

    def on_validation_start(self, trainer: L.Trainer, *_: object) -> None:
        self._send(trainer, "validation")

    def on_train_epoch_end(self, trainer: L.Trainer, *_: object) -> None:
        self._send(trainer, "epoch end")


@pytest.fixture
def signal_at(monkeypatch):
    """signal_at(step, signum, when): the next run built gets `signum` then."""
    build_trainer = litlab.train.build_trainer

    def arm(step: int, signum: signal.Signals, when: str) -> None:
        def build(*args, **kwargs):
            trainer = build_trainer(*args, **kwargs)
            trainer.callbacks.append(SendSignal(step, signum, when))
            return trainer

        monkeypatch.setattr(litlab.train, "build_trainer", build)

    yield arm
    monkeypatch.undo()


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def slow(*values: object) -> object:
    """A case that only `make test` runs; test-fast keeps three: a full-batch step, a
    step Lightning logs and a validation."""
    return pytest.param(*values, marks=pytest.mark.slow)


OVERFIT = (*MINI_BATCH, "debug=overfit", "trainer.max_epochs=10")


@pytest.mark.parametrize(
    ("words", "step", "signum", "when", "stopped"),
    [
        (FULL_BATCH, 13, signal.SIGTERM, "step", 14),
        slow(MINI_BATCH, 15, signal.SIGINT, "step", 16),  # in the middle of the third epoch
        (MINI_BATCH, 9, signal.SIGTERM, "step", 11),  # a step Lightning logs: after the next
        slow(MINI_BATCH, 17, signal.SIGTERM, "step", 18),  # its last batch
        slow((*MINI_BATCH, "scheduler=exponential"), 29, signal.SIGTERM, "step", 30),  # val due
        (MINI_BATCH, 30, signal.SIGTERM, "validation", 30),  # during that validation
        slow(MINI_BATCH, 60, signal.SIGTERM, "epoch end", 60),  # after the last epoch
        slow((*MINI_BATCH, "trainer.accumulate_grad_batches=2"), 7, signal.SIGTERM, "step", 8),
        # 3 batches an epoch of the 6 there are: mid-epoch, and at that short epoch's end
        slow(OVERFIT, 10, signal.SIGTERM, "step", 11),
        slow(OVERFIT, 11, signal.SIGTERM, "step", 12),
    ],
)
def test_resume_after_a_signal_ends_where_an_uninterrupted_run_does(
    make_config, signal_at, monkeypatch, words, step, signum, when, stopped
):
    straight_dir, straight = run(make_config(*words))
    handler = signal.getsignal(signum)
    signal_at(step, signum, when)
    with pytest.raises(Interrupted) as info:
        run(make_config(*words))
    assert info.value.exit_code == 128 + signum
    assert f"training stopped after step {stopped}" in str(info.value)
    (stopped_dir,) = (d for d in straight_dir.parent.iterdir() if d != straight_dir)
    metrics = json.loads((stopped_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted"
    assert metrics["last_good_checkpoint"] == "checkpoints/last.ckpt"
    assert torch.load(stopped_dir / "checkpoints" / "last.ckpt")["global_step"] == stopped
    assert signal.getsignal(signum) is handler  # handed back
    monkeypatch.undo()

    resumed_dir, resumed = run(compose([f"resume={stopped_dir}"]))
    assert resumed_dir == stopped_dir and resumed["status"] == "finished"
    for key, value in weights(straight_dir).items():
        assert torch.equal(weights(resumed_dir)[key], value), key
    assert resumed["test/loss"] == straight["test/loss"]
    steps = [s for s, _ in scalars(resumed_dir)["train/loss"]]
    assert steps == sorted(set(steps)) == [s for s, _ in scalars(straight_dir)["train/loss"]]


class CtrlCTwice(L.Callback):
    """Two Ctrl-C as step 15 starts: the second before the step could finish."""

    def on_train_batch_start(self, trainer: L.Trainer, *_: object) -> None:
        if trainer.global_step == 15:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)


def test_a_second_ctrl_c_stops_at_once_in_the_middle_of_the_step(
    make_config, monkeypatch, tmp_path
):
    build_trainer = litlab.train.build_trainer

    def build(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(CtrlCTwice())
        return trainer

    monkeypatch.setattr(litlab.train, "build_trainer", build)
    with pytest.raises(Interrupted) as info:
        run(make_config(*FULL_BATCH))
    assert info.value.exit_code == 128 + signal.SIGINT
    assert "SIGINT: stopped in the middle of a training step; " in str(info.value)
    (status,) = tmp_path.rglob("metrics.json")
    assert json.loads(status.read_text())["status"] == "interrupted"
    run_dir = status.parent
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 10  # no save


def train_and_signal(words: list[str], runs: Path, log: Path) -> int:
    """Start `litlab train`, send SIGTERM once it has logged a training loss (the progress
    bar shows it, redrawn every epoch); its exit status. Waits for that, not for a time:
    the machine may be slow."""
    bar = ["callbacks.progress_bar.refresh_rate=1"]
    with log.open("w") as stderr:
        train = subprocess.Popen(
            [sys.executable, "-m", "litlab", "train", f"runs_dir={runs}", *words, *bar],
            stderr=stderr,
        )
        deadline = time.monotonic() + 600  # only so that a broken run cannot hang the suite
        while "train/loss=" not in log.read_text() and train.poll() is None:
            assert time.monotonic() < deadline, "no training loss logged"
            time.sleep(0.05)
        train.send_signal(signal.SIGTERM)
        return train.wait(timeout=600)


@pytest.mark.slow
def test_sigterm_to_a_training_process(make_config, tmp_path):
    """The real thing: a `litlab train` process gets SIGTERM mid-run and stops within
    seconds with exit status 143; its TensorBoard files read back; resume= finishes it."""
    epochs = 30  # 44 steps each: the signal lands long before the end
    words = [
        "data.batch_size=8",
        f"trainer.max_epochs={epochs}",
        "trainer.check_val_every_n_epoch=15",
    ]
    runs, log = tmp_path / "runs", tmp_path / "stderr.txt"
    assert train_and_signal(words, runs, log) == 128 + signal.SIGTERM
    (stopped_dir,) = (runs / "circles").iterdir()
    stopped_at = load_checkpoint(stopped_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert 0 < stopped_at < epochs * 44  # after the loss was logged, before the end
    assert f'make train ARGS="resume={stopped_dir}"' in log.read_text()
    assert json.loads((stopped_dir / "metrics.json").read_text())["status"] == "interrupted"
    assert scalars(stopped_dir)["train/loss"]  # the events were flushed and read back
    _, resumed = run(compose([f"resume={stopped_dir}"]))
    straight_dir, straight = run(make_config(*words))
    for key, value in weights(straight_dir).items():
        assert torch.equal(weights(stopped_dir)[key], value), key
    assert resumed["test/loss"] == straight["test/loss"]
    curves = [loss_curves(d) for d in (stopped_dir, straight_dir)]  # what final/loss draws
    assert curves[0]["first_step"] == 1 and len(curves[0]["train"]) == epochs * 44
    assert torch.equal(curves[0]["train"], curves[1]["train"])
    assert curves[0]["val/loss"] == curves[1]["val/loss"]


def loss_curves(run_dir: Path) -> dict:
    callbacks = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["callbacks"]
    (state,) = [v for k, v in callbacks.items() if k.startswith("Dashboard")]
    return state


@pytest.mark.slow
def test_sigterm_to_rank_zero_of_ddp_stops_every_rank_after_the_same_step(tmp_path):
    """Lightning starts rank 1 as a child of rank 0; a signal to rank 0 alone stops both
    after the same step (they agree every log_every_n_steps steps), and rank 0 saves."""
    words = ["trainer=ddp_cpu", "data.batch_size=8", "trainer.max_epochs=300"]
    runs, log = tmp_path / "runs", tmp_path / "stderr.txt"
    assert train_and_signal(words, runs, log) == 128 + signal.SIGTERM
    (stopped_dir,) = (runs / "circles").iterdir()
    step = load_checkpoint(stopped_dir / "checkpoints" / "last.ckpt")["global_step"]
    messages = [line for line in log.read_text().splitlines() if "training stopped" in line]
    assert len(messages) == 2 and all(f"after step {step}," in m for m in messages)  # both ranks
    assert json.loads((stopped_dir / "metrics.json").read_text())["status"] == "interrupted"
