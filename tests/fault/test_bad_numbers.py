"""Bad numbers and bad places: a clear stop, an honest metrics.json, nothing corrupted."""

from __future__ import annotations

import json
import math

import pytest
import torch

import litlab.train
from litlab.cli import main
from litlab.errors import Diverged
from litlab.train import train

EXPLODE = (
    "optimizer=sgd",
    "optimizer.lr=1e38",
    "trainer.max_epochs=20",
    "trainer.check_val_every_n_epoch=1",
)


def test_a_loss_that_stops_being_finite_stops_training(make_config, tmp_path):
    with pytest.raises(Diverged) as info:
        train(make_config(*EXPLODE))
    message = str(info.value)
    assert "training diverged at step 2: the loss is nan" in message
    assert "optimizer.lr" in message and "trainer.gradient_clip_val" in message
    (run_dir,) = list((tmp_path / "runs" / "circles").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["error"] == message
    # the last good checkpoint (saved at the validation before) is kept, with finite weights
    assert metrics["last_good_checkpoint"] == "checkpoints/last.ckpt"
    saved = sorted((run_dir / "checkpoints").iterdir())
    assert run_dir / metrics["last_good_checkpoint"] in saved
    for path in saved:
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_divergence_from_the_command_line_is_one_line_and_exit_3(tmp_path, capsys):
    code = main(["train", f"runs_dir={tmp_path}", *EXPLODE])
    err = capsys.readouterr().err
    assert code == 3 and "litlab: training diverged at step 2" in err and "Traceback" not in err


def test_a_runs_folder_that_cannot_be_made_is_an_error_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["train", f"runs_dir={blocker}/runs"])
    err = capsys.readouterr().err
    assert code == 1 and str(blocker) in err and "Traceback" not in err


@pytest.mark.parametrize("words", [(), ("experiment=diabetes",)])
def test_deterministic_runs_repeat_exactly(make_config, words):
    # a few mini-batch epochs: each one's shuffle and every step must repeat
    short = ("trainer.max_epochs=5", "trainer.deterministic=true", "data.batch_size=32")
    first = train(make_config(*words, *short))[1]
    second = train(make_config(*words, *short))[1]
    assert first == second and not math.isnan(first["test/loss"])


def blow_up_a_gradient_at(step: int, monkeypatch) -> None:
    """From `step` on, one weight's gradient is infinite while the loss is still finite."""
    build_module = litlab.train.build_module

    def with_a_blowing_gradient(*args, **kwargs):
        module = build_module(*args, **kwargs)
        weight = next(module.parameters())
        weight.register_hook(lambda g: g * math.inf if module.trainer.global_step >= step else g)
        return module

    monkeypatch.setattr(litlab.train, "build_module", with_a_blowing_gradient)


WORDS = ("trainer.max_epochs=20", "trainer.check_val_every_n_epoch=5")


@pytest.mark.parametrize(
    ("step", "words", "stopped"),
    [
        # the next step's loss shows the spoilt weights
        (7, (), "at step 8: the loss is nan"),
        # a checkpoint is due after step 9, one that does not wait for a finite val/loss
        (9, ("callbacks.checkpoint.monitor=null",), "at step 10: weight net.0.weight is nan"),
    ],
)
def test_a_gradient_that_overflows_never_reaches_a_checkpoint(
    make_config, monkeypatch, tmp_path, step, words, stopped
):
    blow_up_a_gradient_at(step, monkeypatch)
    with pytest.raises(Diverged, match=stopped):
        train(make_config(*WORDS, *words))
    (run_dir,) = list((tmp_path / "runs" / "circles").iterdir())
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "diverged"
    saved = sorted((run_dir / "checkpoints").iterdir())
    assert run_dir / "checkpoints" / "last.ckpt" in saved
    for path in saved:
        state = torch.load(path, weights_only=True)
        assert state["global_step"] == 5  # the validation before the overflow
        assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
