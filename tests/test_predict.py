"""eval and predict from a checkpoint alone: the same metrics, the same preprocessing."""

from __future__ import annotations

import csv
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
from litlab.predict import OUTPUT_ALLOWED, Predictor, escape_formulas, evaluate_checkpoint
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
    # a column the network does not use is ignored; one it needs is named
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
    """A checkpoint trained with accelerator: gpu is evaluated on the CPU with
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


def _snapshot(*folders):
    """Every file under `folders` with its bytes: what a refused predict must not touch."""
    return {p: p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def test_predict_refuses_an_output_over_what_it_reads_or_a_run_keeps(circles_run, tmp_path, capsys):
    run_dir = circles_run[0]
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    rows = tmp_path / "points.csv"
    pd.DataFrame({"x1": [0.0], "x2": [0.0]}).to_csv(rows, index=False)
    (tmp_path / "link.csv").symlink_to(checkpoint)
    refused = {
        checkpoint: "is the checkpoint itself",
        tmp_path / "link.csv": "is the checkpoint itself",  # a link to it too
        rows: "is the INPUT file",
        run_dir / "checkpoints" / "predictions.csv": (
            f"is in the run folder's checkpoints/ ({run_dir / 'checkpoints'})"
        ),
        run_dir / "checkpoints" / "last.ckpt": (
            f"is in the run folder's checkpoints/ ({run_dir / 'checkpoints'})"
        ),
    }
    before = _snapshot(run_dir, tmp_path)
    for output, what in refused.items():
        assert main(["predict", str(checkpoint), str(rows), str(output)]) == 2, output
        assert capsys.readouterr().err.splitlines() == [
            "litlab: bad config:",
            f"  OUTPUT {output}: {what}; {OUTPUT_ALLOWED}",
        ]
        assert _snapshot(run_dir, tmp_path) == before  # nothing written, nothing changed
    # a folder merely named checkpoints, not a run's, is a place like any other
    elsewhere = tmp_path / "checkpoints" / "predictions.csv"
    elsewhere.parent.mkdir()
    assert main(["predict", str(checkpoint), str(rows), str(elsewhere)]) == 0
    assert pd.read_csv(elsewhere)["x1"].tolist() == [0.0]


def test_text_cells_a_spreadsheet_would_run_are_quoted():
    frame = pd.DataFrame(
        {
            "x": [-1.5, 2.0, float("nan")],
            "n": pd.array([-3, None, 4], dtype="Int64"),
            "text": ["=1+2", "+cmd", None],
            "more": ["-minus", "@SUM(A1)", "plain"],
            "ws": ["\tlead", "\rlead", "a=b"],
            "=head": ["ok", "ok", "ok"],
        }
    )
    out = escape_formulas(frame)
    assert list(out.columns) == ["x", "n", "text", "more", "ws", "'=head"]
    assert out["x"].tolist()[:2] == [-1.5, 2.0] and out["n"].tolist() == [-3, pd.NA, 4]
    assert out["text"].tolist()[:2] == ["'=1+2", "'+cmd"] and pd.isna(out["text"][2])
    assert out["more"].tolist() == ["'-minus", "'@SUM(A1)", "plain"]
    assert out["ws"].tolist() == ["'\tlead", "'\rlead", "a=b"]
    assert frame["text"][0] == "=1+2"  # the frame itself is left as it was


@pytest.fixture(scope="module")
def formula_run(tmp_path_factory):
    """A classifier trained on a table whose class names and text look like formulas."""
    from litlab.config import compose

    folder = tmp_path_factory.mktemp("formulas")
    table = folder / "train.csv"
    lines = [
        f"{x / 10},{'=red' if i % 2 else 'plain'},{'=yes' if x > 0 else '@no'}"
        for i, x in enumerate(range(-40, 40))
    ]
    table.write_text("x,colour,label\n" + "\n".join(lines) + "\n")
    words = ["data=csv", f"data.path={table}", "data.target=label", "trainer.max_epochs=10"]
    run_dir, _ = train(compose([f"runs_dir={folder / 'runs'}", *words]))
    return run_dir / "checkpoints" / "best.ckpt"


def test_predict_quotes_input_text_and_class_names_not_numbers(formula_run, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "x,colour,note\n"
        '-1.5,=red,"=HYPERLINK(""http://x"")"\n'
        "2.0,plain,+1\n"
        "0.5,-minus,@SUM(A1)\n"
        '1.0,plain,"\tlead"\n'
        '-2.0,plain,"\r=cmd"\n'
    )
    output = tmp_path / "out.csv"
    assert main(["predict", str(formula_run), str(rows), str(output)]) == 0
    with open(output, newline="") as f:
        header, *cells = list(csv.reader(f))
    assert header == ["x", "colour", "note", "prediction", "probability", "problem"]
    assert [row[:3] for row in cells] == [
        ["-1.5", "'=red", '\'=HYPERLINK("http://x")'],
        ["2.0", "plain", "'+1"],
        ["0.5", "'-minus", "'@SUM(A1)"],
        ["1.0", "plain", "'\tlead"],
        ["-2.0", "plain", "'\r=cmd"],
    ]
    predictor = Predictor.from_checkpoint(formula_run)
    predicted = predictor.predict(predictor.read(rows))
    assert set(predicted["prediction"]) <= {"=yes", "@no"}  # the training file's names
    assert [row[3] for row in cells] == ["'" + name for name in predicted["prediction"]]
    assert [float(row[4]) for row in cells] == pytest.approx(predicted["probability"].tolist())


class _Unwritable:
    """A cell that fails when the CSV writer reaches it: a stop in the middle of writing."""

    def __str__(self) -> str:
        raise RuntimeError("stopped while writing")


def test_predictions_replace_the_old_file_whole_or_not_at_all(circles_run, tmp_path, monkeypatch):
    checkpoint = circles_run[0] / "checkpoints" / "best.ckpt"
    rows = _csv(tmp_path, pd.DataFrame({"x1": [0.0] * 50, "x2": [0.0] * 50}))
    output = tmp_path / "out.csv"
    assert main(["predict", str(checkpoint), rows, str(output)]) == 0
    old = output.read_bytes()
    predict = Predictor.predict

    def predict_then_stop(self, frame):
        out = predict(self, frame)
        return out.assign(late=[1.0] * (len(out) - 1) + [_Unwritable()])  # the last row fails

    monkeypatch.setattr(Predictor, "predict", predict_then_stop)
    with pytest.raises(RuntimeError, match="stopped while writing"):
        main(["predict", str(checkpoint), rows, str(output)])
    assert output.read_bytes() == old  # the previous predictions, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "rows.csv"]  # no partial
