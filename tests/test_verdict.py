"""Who wins, said plainly: the trivial baselines every run has, and ties called ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litlab.baselines import (
    binary_scores,
    classifiers,
    fit_and_score,
    multiclass_scores,
    regression_scores,
    regressors,
)
from litlab.cli import _report
from litlab.verdict import overfitting, verdict


def test_an_exact_tie_reads_as_a_tie_not_a_win_by_nothing():
    acc = float(np.float32(71 / 75))  # torchmetrics' float32 beside scikit-learn's float64
    metrics = {"test/acc": acc, "baseline/svc/acc": 71 / 75, "test_rows": 75}
    assert verdict(metrics) == [
        "a tie: test/acc 0.9467 for the network, 0.9467 for svc (equal within float32 rounding)"
    ]


def test_one_test_row_apart_is_a_tie_two_are_not():
    one = {"test/acc": 71 / 75, "baseline/svc/acc": 72 / 75, "test_rows": 75}
    assert verdict(one) == [
        "a tie: test/acc 0.9467 for the network, 0.9600 for svc "
        "(at most one of the 75 test rows apart)"
    ]
    two = one | {"test/acc": 70 / 75}
    assert verdict(two) == [
        "the baseline wins: svc test/acc 0.9600 against the network's 0.9333 (by 0.0267)"
    ]
    assert verdict(one | {"test/acc": 74 / 75}) == [
        "the network wins: test/acc 0.9867 against svc's 0.9600 (by 0.0267)"
    ]


def test_r2_has_no_rows_to_be_within_only_rounding():
    metrics = {"test/r2": 0.4821, "baseline/ridge/r2": 0.4810, "baseline/mean/r2": -0.01}
    assert verdict(metrics) == [
        "the network wins: test/r2 0.4821 against ridge's 0.4810 (by 0.0011)"
    ]


def test_a_network_no_better_than_always_the_majority_class_is_told_so():
    """The reported case: a 3-grade target at 0.641, always "II" at 0.650."""
    metrics = {
        "test/acc": 0.641,
        "baseline/svc/acc": 0.67,
        "baseline/majority/acc": 0.65,
        "test_rows": 103,
    }
    assert verdict(metrics) == [
        "the baseline wins: svc test/acc 0.6700 against the network's 0.6410 (by 0.0290)",
        "the network does no better than majority (always the most frequent training class): "
        "test/acc 0.6410 against 0.6500",
    ]
    alone = {"test/acc": 0.6, "baseline/majority/acc": 0.65, "test_rows": 103}
    assert verdict(alone) == [
        "the baseline wins: majority (always the most frequent training class) test/acc 0.6500 "
        "against the network's 0.6000 (by 0.0500)"
    ]


def test_a_cross_validation_summary_says_who_wins_on_the_means(capsys):
    summary = {
        "folds": 5,
        "test_rows": 442,
        "test/r2": {"mean": 0.482, "std": 0.1, "values": []},
        "baseline/ridge/r2": {"mean": 0.481, "std": 0.1, "values": []},
    }
    expected = (
        "the network wins: test/r2 0.4820 against ridge's 0.4810 (by 0.0010) (means over 5 folds)"
    )
    assert verdict(summary) == [expected]
    _report("runs/x", summary)
    assert expected in capsys.readouterr().out.splitlines()


def test_the_trivial_baselines_score_as_hand_computed():
    # training labels 0,0,0,1 (the majority is 0); test labels 0,1,1
    x = torch.arange(7, dtype=torch.float32).reshape(-1, 1)
    y = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    train, test = (x[:4], y[:4]), (x[4:], y[4:])
    majority = {"majority": classifiers()["majority"]}
    scores = fit_and_score(majority, train, test, binary_scores)
    assert scores == {
        "baseline/majority/acc": pytest.approx(1 / 3),
        "baseline/majority/auroc": 0.5,  # one score for every row: no ranking
        "baseline/majority/f1": 0.0,  # class 1 never predicted
    }
    grades = torch.tensor([1, 1, 2, 0, 1, 2, 2])
    scores = fit_and_score(majority, (x[:4], grades[:4]), (x[4:], grades[4:]), multiclass_scores)
    assert scores["baseline/majority/acc"] == pytest.approx(1 / 3)
    # macro F1 over the classes present (1: precision 1/3, recall 1; 2: never predicted)
    assert scores["baseline/majority/f1"] == pytest.approx((0.5 + 0) / 2)
    values = torch.tensor([1.0, 2.0, 3.0, 6.0, 2.0, 4.0, 6.0])
    mean = {"mean": regressors()["mean"]}
    scores = fit_and_score(mean, (x[:4], values[:4]), (x[4:], values[4:]), regression_scores)
    errors = np.array([2.0, 4.0, 6.0]) - 3.0  # the training mean is 3
    assert scores["baseline/mean/mse"] == pytest.approx(np.mean(errors**2))
    assert scores["baseline/mean/mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert scores["baseline/mean/r2"] == pytest.approx(1 - np.sum(errors**2) / 8)  # SS_tot 8


def test_a_run_whose_val_loss_ends_far_above_its_best_is_told_it_overfits():
    """The default job's case: val/loss 0.073 at step 100, 0.18 at step 1000."""
    metrics = {
        "best_val/loss": 0.073,
        "final_val/loss": 0.18,
        "best_step": 100,
        "steps": 1000,
        "best_checkpoint": "checkpoints/best.ckpt",
    }
    assert overfitting(metrics) == [
        "val/loss was best at step 100 (0.0730) and ended 147% worse at step 1000 (0.1800): "
        "the steps after the best overfit; the test used checkpoints/best.ckpt, from the best step"
    ]
    assert overfitting(metrics | {"final_val/loss": 0.08}) == []  # within 10%
    # a score that is maximised: its best is the higher end
    assert "val/acc was best" in overfitting({"best_val/acc": 0.9, "final_val/acc": 0.7})[0]
