"""The circles data module and in-memory batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_circles
from sklearn.svm import SVC

import litlab.baselines
from litlab.data import CirclesDataModule
from litlab.data.batches import TensorBatches


def test_split_is_stratified_and_made_of_the_lessons_points():
    dm = CirclesDataModule()
    dm.setup()
    sizes = [len(part[0]) for part in (dm.train, dm.val, dm.test)]
    assert sizes == [350, 75, 75]
    X, _ = make_circles(n_samples=500, noise=0.2, factor=0.3, random_state=123)
    all_points = torch.cat([dm.train[0], dm.val[0], dm.test[0]])
    # the three parts are the 500 generated points, each exactly once
    assert sorted(map(tuple, all_points.tolist())) == sorted(
        map(tuple, X.astype(np.float32).tolist())
    )
    for x, y in (dm.train, dm.val, dm.test):
        assert x.dtype == torch.float32 and y.shape == (len(x), 1)
        assert abs(y.mean().item() - 0.5) < 0.02  # make_circles is balanced; so is each part


def test_fresh_holdout_trains_on_all_points_as_the_lesson():
    dm = CirclesDataModule(holdout="fresh")
    dm.setup()
    X, y = make_circles(n_samples=500, noise=0.2, factor=0.3, random_state=123)
    assert torch.equal(dm.train[0], torch.Tensor(X)) and torch.equal(
        dm.train[1], torch.Tensor(y.reshape(500, 1))
    )
    X_val, _ = make_circles(n_samples=500, noise=0.2, factor=0.3, random_state=124)
    assert torch.equal(dm.val[0], torch.Tensor(X_val))
    assert not torch.equal(dm.test[0], dm.val[0])


def test_split_depends_on_random_state_only():
    a, b, c = CirclesDataModule(), CirclesDataModule(), CirclesDataModule(random_state=5)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.test[0], b.test[0]) and not torch.equal(a.test[0], c.test[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"val_fraction": 0.6, "test_fraction": 0.5},
            "val_fraction=0.6 + test_fraction=0.5 leaves fewer than 2 of the 500 rows",
        ),
        ({"test_fraction": 0.0}, "test_fraction=0.0: must be in (0, 1)"),
        (
            {"n_samples": 10, "val_fraction": 0.1},
            "val_fraction=0.1: must be in (0, 1) and hold at least 2",
        ),
        ({"folds": 1}, "folds=1: must be between 2 and the number of rows (500)"),
        ({"folds": 5, "holdout": "fresh"}, "folds=5: cross-validation needs holdout=split"),
        ({"holdout": "later"}, "holdout='later': must be 'split' or 'fresh'"),
        ({"batch_size": 0}, "batch_size=0: must be >= 1, or null for full batch"),
    ],
)
def test_impossible_settings_name_the_key(kwargs, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")
    ):
        CirclesDataModule(**kwargs)


def tensors(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n, dtype=torch.float32).reshape(n, 1), torch.arange(n).reshape(n, 1)


def test_full_batch_yields_the_tensors_themselves():
    data = tensors(10)
    (batch,) = list(TensorBatches(data, batch_size=None))
    assert batch[0] is data[0] and batch[1] is data[1]  # no copy per step


@pytest.mark.parametrize(("batch_size", "batches"), [(1, 10), (3, 4), (10, 1), (64, 1)])
def test_mini_batches_cover_every_row_once_per_epoch(batch_size, batches):
    loader = TensorBatches(tensors(10), batch_size, shuffle_seed=0)
    out = list(loader)
    assert len(out) == len(loader) == batches
    rows = torch.cat([x for x, _ in out]).flatten().tolist()
    assert sorted(rows) == list(range(10))
    assert all(torch.equal(x.long(), y) for x, y in out)  # features and labels stay paired


def test_shuffled_order_is_set_by_seed_and_epoch():
    epoch = [0]
    loader = TensorBatches(tensors(50), 10, shuffle_seed=1, epoch=lambda: epoch[0])
    first, again = torch.cat([x for x, _ in loader]), torch.cat([x for x, _ in loader])
    epoch[0] = 1
    second = torch.cat([x for x, _ in loader])
    assert torch.equal(first, again) and not torch.equal(first, second)


def test_ranks_train_on_disjoint_equal_shards():
    shards = [
        torch.cat([x for x, _ in TensorBatches(tensors(11), 2, 0, rank=r, world_size=2)])
        for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].flatten().tolist()) & set(shards[1].flatten().tolist())


def test_ranks_evaluate_every_row_exactly_once():
    shards = [
        next(iter(TensorBatches(tensors(11), None, rank=r, world_size=3)))[0] for r in range(3)
    ]
    assert sorted(torch.cat(shards).flatten().tolist()) == list(range(11))


def test_folds_partition_the_rows_into_test_sets():
    tests = []
    for fold in range(5):
        dm = CirclesDataModule(folds=5, fold=fold)
        dm.setup()
        assert len(dm.test[0]) == 100 and len(dm.val[0]) == 75 and len(dm.train[0]) == 325
        tests.append(dm.test[0])
    points = torch.cat(tests)
    assert len({tuple(p) for p in points.tolist()}) == 500  # each point is tested once


def test_baselines_of_a_large_set_fit_on_a_sample_and_score_every_test_row(monkeypatch):
    fitted, scored = [], []
    fit, decision = SVC.fit, SVC.decision_function
    monkeypatch.setattr(SVC, "fit", lambda self, x, y: fitted.append(len(x)) or fit(self, x, y))
    monkeypatch.setattr(
        SVC, "decision_function", lambda self, x: scored.append(len(x)) or decision(self, x)
    )
    monkeypatch.setattr(litlab.baselines, "MAX_FIT_ROWS", 300)
    datamodule = CirclesDataModule(n_samples=3000)
    datamodule.setup()
    scores = datamodule.baselines()
    assert fitted == [300] and scored == [len(datamodule.test[0])] == [450]
    assert scores["baseline/svc/acc"] > 0.9


def test_batches_resume_inside_an_epoch_where_the_checkpoint_left_it():
    data = (torch.arange(10.0),)
    batches = TensorBatches(data, 2, shuffle_seed=5, epoch=lambda: 4)
    whole_epoch = []
    for batch in batches:  # a checkpoint taken after the third trained batch
        whole_epoch.append(batch[0].tolist())
        if len(whole_epoch) <= 3:
            batches.count_trained()
    state = batches.state_dict()
    assert state == {"epoch": 4, "trained": 3}
    again = TensorBatches(data, 2, shuffle_seed=5, epoch=lambda: 4)
    again.load_state_dict(state)
    assert [b[0].tolist() for b in again] == whole_epoch[3:]
    assert [b[0].tolist() for b in again] == whole_epoch  # only the resumed epoch is cut
    again.load_state_dict({"epoch": 4, "trained": 5})  # saved after the epoch's last batch
    assert [b[0].tolist() for b in again] == whole_epoch
