"""End-to-end runs: folder layout, metrics against references, reproducibility, presets."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import torch
from conftest import check_task_cell, load_net, scalars
from omegaconf import OmegaConf
from sklearn.metrics import f1_score
from sklearn.svm import SVC

from litlab import rundirs
from litlab.config import ConfigError
from litlab.data import CirclesDataModule
from litlab.model import MLP
from litlab.rundirs import claim_run_dir
from litlab.train import prepare, train
from litlab.verdict import overfitting

SHORT = ("trainer.max_epochs=100", "trainer.check_val_every_n_epoch=20")


@pytest.mark.slow
def test_default_job_is_within_two_points_of_an_rbf_svm(make_config):
    _, metrics = train(make_config())
    dm = CirclesDataModule()
    dm.setup()
    (x_train, y_train), (x_test, y_test) = dm.train, dm.test
    svc = SVC(kernel="rbf").fit(x_train.numpy(), y_train.numpy().ravel())
    svc_acc = svc.score(x_test.numpy(), y_test.numpy().ravel())
    assert metrics["test/acc"] >= svc_acc - 0.02, (metrics["test/acc"], svc_acc)
    assert metrics["baseline/svc/acc"] == pytest.approx(svc_acc)  # the run's own baseline agrees
    check_task_cell("circles", metrics)  # the README's figures are this run's
    # it overfits after its best val/loss, and the summary says where the best was
    assert metrics["final_val/loss"] > 1.1 * metrics["best_val/loss"]
    (said,) = overfitting(metrics)
    assert said.startswith(f"val/loss was best at step {metrics['best_step']} ")


def test_run_folder_holds_config_events_checkpoints_and_metrics(make_config, tmp_path):
    composed = make_config(*SHORT, "name=demo")
    run_dir, metrics = train(composed)
    assert run_dir.parent == tmp_path / "runs" / "demo"
    stamp, _, label = run_dir.name.partition("_max_epochs")  # named by what differs (#16)
    assert datetime.strptime(stamp, "%Y-%m-%d_%H-%M-%S") and label
    assert OmegaConf.load(run_dir / "config.yaml") == composed.cfg
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    assert {"test/acc", "test/auroc", "test/loss", "best_val/loss"} <= set(metrics)
    logged = scalars(run_dir)
    # 100 steps: about 20 points, every 5 steps (Lightning's fixed 50 would give 2)
    assert [step for step, _ in logged["train/loss"]] == list(range(4, 100, 5))
    assert len(logged["val/loss"]) == 5 and "lr-Adam" in logged


def test_test_metrics_are_those_of_the_best_checkpoint(make_config):
    """Recompute test accuracy and loss from best.ckpt with plain torch."""
    run_dir, metrics = train(make_config(*SHORT))
    net = MLP(2, 1, hidden=[16, 16], activation="tanh")
    load_net(net, run_dir / "checkpoints" / "best.ckpt")
    dm = CirclesDataModule()
    dm.setup()
    x, y = dm.test
    with torch.no_grad():
        logits = net(x)
    predicted = (torch.sigmoid(logits) >= 0.5).float()
    accuracy = (predicted == y).float().mean().item()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y).item()
    assert metrics["test/acc"] == pytest.approx(accuracy, abs=1e-7)
    assert metrics["test/f1"] == pytest.approx(f1_score(y.ravel(), predicted.ravel()), abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(loss, rel=1e-6)


@pytest.mark.slow
def test_same_seed_same_metrics_bit_for_bit(make_config):
    first = train(make_config(*SHORT, "seed=3"))[1]
    second = train(make_config(*SHORT, "seed=3"))[1]
    other = train(make_config(*SHORT, "seed=4"))[1]
    assert first == second
    assert first["test/loss"] != other["test/loss"]


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    class Frozen(datetime):
        @classmethod
        def now(cls, *_args):
            return datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(rundirs, "datetime", Frozen)
    names = [claim_run_dir(tmp_path).name for _ in range(3)]
    assert names == ["2026-01-02_03-04-05", "2026-01-02_03-04-05_1", "2026-01-02_03-04-05_2"]


def test_config_error_leaves_no_run_folder(make_config, tmp_path):
    with pytest.raises(ConfigError):
        prepare(make_config("data.val_fraction=0.6", "data.test_fraction=0.5"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("scheduler", ["step", "multistep", "exponential", "cosine", "plateau"])
def test_every_schedule_runs_under_the_trainer(make_config, scheduler):
    words = [*SHORT, f"scheduler={scheduler}", "trainer.log_every_n_steps=1"]
    run = prepare(make_config(*words))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    (config,) = run.trainer.lr_scheduler_configs
    assert config.interval == "epoch"
    lrs = [value for _, value in scalars(run.dir)["lr-Adam"]]
    assert len(lrs) == 100 and lrs[0] == pytest.approx(0.01)


def test_step_schedule_shows_in_the_logged_learning_rate(make_config):
    words = [
        "trainer.max_epochs=6",
        "scheduler=step",
        "scheduler.step_size=2",
        "trainer.log_every_n_steps=1",
    ]
    run_dir, _ = train(make_config(*words))
    lrs = [value for _, value in scalars(run_dir)["lr-Adam"]]
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])


@pytest.mark.parametrize("batch_size", [1, 64])
def test_sgd_and_mini_batch_take_one_step_per_batch(make_config, batch_size):
    run = prepare(make_config("trainer.max_epochs=2", f"data.batch_size={batch_size}"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.trainer.global_step == 2 * -(-350 // batch_size)


def test_debug_fast_dev_run_takes_one_step(make_config):
    run_dir, metrics = train(make_config("debug=fast_dev_run"))
    assert metrics["epochs"] == 1 and "test/acc" in metrics
    assert (run_dir / "metrics.json").exists()


def test_debug_overfit_memorises_a_few_batches(make_config):
    run = prepare(make_config("debug=overfit"))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.trainer.num_training_batches == 3
    assert run.trainer.callback_metrics["train/loss"] < 0.05


def test_debug_profiler_reports_hooks(make_config, caplog):
    train(make_config("debug=profiler", "trainer.max_epochs=5"))
    assert "run_training_batch" in caplog.text


def test_without_a_logger_a_run_writes_no_events(make_config):
    run_dir, metrics = train(make_config("logger=none", "trainer.max_epochs=50"))
    assert metrics["status"] == "finished" and (run_dir / "checkpoints" / "best.ckpt").exists()
    assert not list(run_dir.rglob("events.out.tfevents.*"))


def test_a_callback_set_to_null_is_not_replaced_by_lightnings_own(make_config, capsys):
    words = ("callbacks.checkpoint=null", "callbacks.progress_bar=null", "trainer.max_epochs=10")
    run_dir, metrics = train(make_config(*words))
    assert metrics["status"] == "finished"
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.ckpt"]
    assert "best_checkpoint" not in metrics and "it/s" not in capsys.readouterr().err
    run_dir, _ = train(make_config(*words, "callbacks.last=null"))
    assert not (run_dir / "checkpoints").exists()


def test_the_progress_bar_counts_to_max_steps(make_config, capsys):
    train(make_config("data.batch_size=64", "trainer.max_steps=30"))  # 6 batches an epoch
    assert "5/5 [" in capsys.readouterr().err
