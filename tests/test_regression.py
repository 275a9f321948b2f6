"""Regression end to end: metrics in the target's units, baselines, k-fold CV, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import check_task_cell, load_net
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score

from litlab.cli import main
from litlab.config import ConfigError
from litlab.data import DiabetesDataModule
from litlab.model import MLP
from litlab.train import prepare, run, train

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "diabetes_cohort.csv"
SHORT = ("trainer.max_epochs=200",)


def test_diabetes_metrics_are_in_the_targets_units(make_config):
    """Recompute test R2 and MAE from best.ckpt with plain torch and scikit-learn."""
    run_dir, metrics = train(make_config("experiment=diabetes", *SHORT))
    net = MLP(10, 1, hidden=[16], activation="tanh")
    state = load_net(net, run_dir / "checkpoints" / "best.ckpt")
    dm = DiabetesDataModule()
    dm.setup()
    x, y = dm.test
    with torch.no_grad():
        pred = net(x).numpy().ravel() * state["target_std"].item() + state["target_mean"].item()
    truth = dm.unscale(y.numpy().ravel())
    assert metrics["test/r2"] == pytest.approx(r2_score(truth, pred), abs=1e-4)
    assert metrics["test/mae"] == pytest.approx(mean_absolute_error(truth, pred), rel=1e-5)
    assert metrics["test/rmse"] == pytest.approx(np.sqrt(metrics["test/mse"]), rel=1e-5)
    # what predictions on new rows need travels in the checkpoint, as plain data
    stored = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)[
        "DiabetesDataModule"
    ]
    assert stored["encoder"]["numeric"]["bmi"][1] == pytest.approx(dm.encoder.numeric["bmi"][1])
    assert stored["target_mean"] == pytest.approx(dm.target_mean)


def test_baselines_sit_next_to_the_network(make_config):
    run_dir, metrics = train(make_config("experiment=diabetes", *SHORT))
    dm = DiabetesDataModule()
    dm.setup()
    (x_train, y_train), (x_test, y_test) = dm.train, dm.test
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(
        x_train.numpy(), dm.unscale(y_train.numpy().ravel())
    )
    expected = r2_score(dm.unscale(y_test.numpy().ravel()), ridge.predict(x_test.numpy()))
    assert metrics["baseline/ridge/r2"] == pytest.approx(expected, rel=1e-6)
    keys = {f"baseline/{m}/{k}" for m in ("ridge", "linear") for k in ("mse", "rmse", "mae", "r2")}
    assert keys <= set(json.loads((run_dir / "metrics.json").read_text()))


@pytest.mark.parametrize(
    ("loss", "criterion"), [("mse", "MSELoss"), ("l1", "L1Loss"), ("huber", "HuberLoss")]
)
def test_loss_is_chosen_in_config(make_config, loss, criterion):
    built = prepare(make_config("data=diabetes", f"module.loss={loss}"))
    assert type(built.module.criterion).__name__ == criterion


def test_module_must_fit_the_data(make_config, tmp_path):
    with pytest.raises(
        ConfigError,
        match="RegressorModule is for regression tasks, but CirclesDataModule is binary",
    ):
        prepare(make_config("module=regressor"))
    assert not (tmp_path / "runs").exists()


def test_csv_job_trains_from_config(make_config, tmp_path):
    words = ["data=csv", f"data.path={EXAMPLE}", "data.features=[age,bmi,bmi_class,bp,ltg]", *SHORT]
    run_dir, metrics = train(make_config(*words))
    assert run_dir.parent == tmp_path / "runs" / "csv"
    assert metrics["test/r2"] > 0.2 and "baseline/ridge/r2" in metrics


def test_k_fold_runs_and_summary(make_config):
    parent, summary = run(
        make_config("experiment=diabetes", "data.folds=3", "trainer.max_epochs=50")
    )
    folds = [json.loads((parent / f"fold_{k}" / "metrics.json").read_text()) for k in range(3)]
    assert summary == json.loads((parent / "cv_summary.json").read_text())
    assert summary["folds"] == 3
    for key in ("test/r2", "baseline/ridge/r2", "baseline/linear/mae"):
        values = [f[key] for f in folds]
        assert summary[key]["values"] == values
        assert summary[key]["mean"] == pytest.approx(np.mean(values))
        assert summary[key]["std"] == pytest.approx(np.std(values, ddof=1))


@pytest.mark.slow
def test_diabetes_network_matches_ridge_over_five_folds(make_config):
    _, summary = run(make_config("experiment=diabetes", "data.folds=5"))
    assert summary["test/r2"]["mean"] >= summary["baseline/ridge/r2"]["mean"] - 0.03, summary
    check_task_cell("diabetes", summary)  # the README's figures are this run's


def test_bad_csv_from_the_command_line_is_one_clear_message(capsys, tmp_path):
    code = main(
        ["train", f"runs_dir={tmp_path}/runs", "data=csv", f"data.path={tmp_path}/none.csv"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "data (" in err and "none.csv" in err and "no such file" in err
    assert not (tmp_path / "runs").exists()
