"""resume=FOLDER continues a run in its own folder to the same weights as an uninterrupted run."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import scalars

from litlab.callbacks import RandomState
from litlab.config import ConfigError
from litlab.rundirs import compose
from litlab.train import run

# shuffled mini-batches (6 a epoch): the data order must be restored too
WORDS = [
    "data.batch_size=64",
    "trainer.check_val_every_n_epoch=5",
    "trainer.log_every_n_steps=5",
    "seed=1",
]


def last_weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resumed_run_ends_where_the_uninterrupted_one_does(make_config, tmp_path):
    straight_dir, straight = run(make_config(*WORDS, "trainer.max_epochs=20"))
    first_dir, _ = run(make_config(*WORDS, "trainer.max_epochs=10"))
    resumed_dir, resumed = run(compose([f"resume={first_dir}", "trainer.max_epochs=20"]))
    assert resumed_dir == first_dir and len(list((tmp_path / "runs" / "circles").iterdir())) == 2
    for key, value in last_weights(straight_dir).items():
        assert torch.allclose(last_weights(resumed_dir)[key], value, atol=1e-6), key
    assert resumed["test/loss"] == pytest.approx(straight["test/loss"], rel=1e-5)
    steps = [step for step, _ in scalars(resumed_dir)["train/loss"]]
    assert steps == list(range(4, 120, 5))  # one TensorBoard run, no step logged twice


def test_a_finished_run_says_so_unless_max_epochs_is_raised(make_config):
    run_dir, _ = run(make_config("trainer.max_epochs=10", "trainer.check_val_every_n_epoch=5"))
    with pytest.raises(
        ConfigError, match=r"that run finished its 10 epochs; .*trainer.max_epochs=20"
    ):
        run(compose([f"resume={run_dir}"]))


def test_resume_needs_a_run_with_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="no run there"):
        compose([f"resume={tmp_path}"])
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(ConfigError, match=r"no checkpoints/last.ckpt there to resume"):
        run(compose([f"resume={tmp_path}"]))


def test_resume_keeps_the_groups(make_config):
    run_dir, _ = run(make_config("trainer.max_epochs=5", "trainer.check_val_every_n_epoch=5"))
    with pytest.raises(ConfigError, match=r"optimizer=sgd .*a resumed run keeps its groups"):
        compose([f"resume={run_dir}", "optimizer=sgd"])


def test_random_state_travels_in_the_checkpoint(make_config):
    run_dir, _ = run(make_config("trainer.max_epochs=5", "trainer.check_val_every_n_epoch=5"))
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("RandomState")]
    (own,) = state["ranks"]  # one process: one rank
    torch.set_rng_state(own["cpu"])
    expected = torch.rand(3)
    torch.manual_seed(123)  # elsewhere
    RandomState().load_state_dict(state)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_a_fold_of_a_cross_validation_resumes_on_its_own_split(make_config):
    short = ("data.folds=3", "trainer.check_val_every_n_epoch=5")
    straight_parent, _ = run(make_config(*short, "trainer.max_epochs=20"))
    first_parent, _ = run(make_config(*short, "trainer.max_epochs=10"))
    _, resumed = run(compose([f"resume={first_parent / 'fold_1'}", "trainer.max_epochs=20"]))
    for key, value in last_weights(straight_parent / "fold_1").items():
        assert torch.allclose(last_weights(first_parent / "fold_1")[key], value, atol=1e-6), key
    straight = json.loads((straight_parent / "fold_1" / "metrics.json").read_text())
    assert resumed["test/loss"] == pytest.approx(straight["test/loss"], rel=1e-5)
