"""eval and predict from a checkpoint alone: the same metrics, the same preprocessing."""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest
import torch
from sklearn.metrics import r2_score

from litlab.checkpoints import load_checkpoint
from litlab.cli import main
from litlab.config import ConfigError
from litlab.data import CirclesDataModule, DiabetesDataModule
from litlab.data.split import split_rows
from litlab.predict import Predictor, evaluate_checkpoint
from litlab.train import train

SHORT = ("trainer.max_epochs=100", "trainer.check_val_every_n_epoch=20")
EXAMPLE_TARGET = "progression"


@pytest.fixture(scope="module")
def circles_run(tmp_path_factory):
    from litlab.config import compose

    runs = tmp_path_factory.mktemp("runs")
    return train(compose([f"runs_dir={runs}", *SHORT]))


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory):
    from litlab.config import compose

    runs = tmp_path_factory.mktemp("runs")
    return train(compose([f"runs_dir={runs}", "experiment=diabetes", "trainer.max_epochs=200"]))


def test_eval_gives_the_runs_test_metrics_exactly(circles_run, diabetes_run):
    for run_dir, metrics in (circles_run, diabetes_run):
        again = evaluate_checkpoint(run_dir / "checkpoints" / "best.ckpt")
        assert again == {k: v for k, v in metrics.items() if k.startswith("test/")}


def test_predict_points_gives_the_test_accuracy(circles_run):
    run_dir, metrics = circles_run
    dm = CirclesDataModule()
    dm.setup()
    x, y = dm.test
    frame = pd.DataFrame(x.numpy(), columns=["x1", "x2"])
    out = Predictor.from_checkpoint(run_dir / "checkpoints" / "best.ckpt").predict(frame)
    assert list(out.columns) == ["x1", "x2", "prediction", "probability", "problem"]
    assert ((out["probability"] >= 0.5).astype(int) == out["prediction"]).all()
    assert (out["prediction"].to_numpy() == y.numpy().ravel()).mean() == pytest.approx(
        metrics["test/acc"]
    )


def test_predict_rows_uses_the_stored_encoding(diabetes_run):
    """Raw test rows in, predictions in the target's units out: the run's test R2."""
    run_dir, metrics = diabetes_run
    frame = DiabetesDataModule().read()[0]
    _, _, test = split_rows(len(frame), 0.15, 0.15, seed=0)
    rows = frame.iloc[test]
    out = Predictor.from_checkpoint(run_dir / "checkpoints" / "best.ckpt").predict(rows)
    assert r2_score(rows["target"], out["prediction"]) == pytest.approx(
        metrics["test/r2"], abs=1e-4
    )


def test_wrong_columns_are_named(diabetes_run, circles_run):
    predictor = Predictor.from_checkpoint(diabetes_run[0] / "checkpoints" / "best.ckpt")
    rows = DiabetesDataModule().read()[0].head(3).drop(columns=["bmi"]).assign(weight=1.0)
    # a column the network does not use is ignored (issue 16); one it needs is named
    expected = "input columns: missing bmi; the network was trained on: age, sex"
    with pytest.raises(ConfigError, match=expected):
        predictor.predict(rows)
    points = Predictor.from_checkpoint(circles_run[0] / "checkpoints" / "best.ckpt")
    with pytest.raises(ConfigError, match="missing x2"):
        points.predict(pd.DataFrame({"x1": [0.0]}))


def test_bad_checkpoint_files_are_named(tmp_path, circles_run):
    good = (circles_run[0] / "checkpoints" / "best.ckpt").read_bytes()
    cases = {
        "absent.ckpt": None,
        "truncated.ckpt": good[: len(good) // 2],
        "text.ckpt": b"not a checkpoint",
        "tensors.ckpt": "plain",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content == "plain":
            torch.save({"state_dict": {}}, path)
        elif content is not None:
            path.write_bytes(content)
        with pytest.raises(ConfigError) as info:
            load_checkpoint(path)
        (error,) = info.value.errors
        assert error.startswith(str(path)), error


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "evil.ckpt"
    torch.save({"litlab": Payload()}, path, pickle_module=pickle)
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_eval_and_predict_from_the_command_line(circles_run, tmp_path, capsys):
    checkpoint = circles_run[0] / "checkpoints" / "best.ckpt"
    assert main(["eval", str(checkpoint)]) == 0
    written = json.loads(checkpoint.with_suffix(".eval.json").read_text())
    assert written["test/acc"] == circles_run[1]["test/acc"]
    rows = tmp_path / "points.csv"
    pd.DataFrame({"x1": [0.0, 1.2], "x2": [0.0, 0.0]}).to_csv(rows, index=False)
    assert main(["predict", str(checkpoint), str(rows), str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["prediction"].tolist() == [1, 0]  # the centre is class 1, outside is class 0
    assert main(["predict", str(tmp_path / "none.ckpt"), str(rows), str(tmp_path / "o.csv")]) == 2
    assert "none.ckpt: no such checkpoint file" in capsys.readouterr().err


def _stored_on_gpu(best, tmp_path, **trainer):
    """A copy of `best` whose stored config says it was trained with `trainer` (a GPU)."""
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    checkpoint["litlab"]["config"]["trainer"].update(trainer)
    path = tmp_path / "gpu.ckpt"
    torch.save(checkpoint, path)
    return path


def test_eval_of_a_gpu_run_runs_on_this_machine(circles_run, tmp_path, capsys, monkeypatch):
    """Issue 13.6: a checkpoint trained with accelerator: gpu is evaluated on the CPU with
    the run's metrics (by default on `auto`, or trainer.accelerator=cpu); a precision the
    CPU cannot run falls back to 32-true in one line; predict runs too."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir, metrics = circles_run
    expected = {k: v for k, v in metrics.items() if k.startswith("test/")}
    path = _stored_on_gpu(run_dir / "checkpoints" / "best.ckpt", tmp_path, accelerator="gpu")
    assert evaluate_checkpoint(path) == expected
    assert main(["eval", str(path), "trainer.accelerator=cpu"]) == 0
    assert json.loads(path.with_suffix(".eval.json").read_text()) == expected
    frame = pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.0, 0.5]})
    assert main(["predict", str(path), _csv(tmp_path, frame), str(tmp_path / "p.csv")]) == 0
    mixed = _stored_on_gpu(path, tmp_path, precision="16-mixed")
    capsys.readouterr()
    assert evaluate_checkpoint(mixed) == expected
    out = capsys.readouterr().out
    assert "trainer.precision=16-mixed needs a GPU" in out and "32-true" in out
    assert main(["eval", str(mixed), "optimizer.lr=1"]) == 2
    assert "only trainer.key=value" in capsys.readouterr().err


def _csv(tmp_path, frame):
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    return str(path)
