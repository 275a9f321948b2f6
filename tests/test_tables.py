"""Any CSV table: the task inferred or chosen, what each column became, delimiters, the
data's fingerprint, and predict on rows that are not clean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from litlab.builders import build_data, build_module
from litlab.cli import main
from litlab.data import CsvDataModule
from litlab.data.columns import infer_task
from litlab.module import ClassifierModule, RegressorModule
from litlab.predict import Predictor
from litlab.train import train

SHORT = ("trainer.max_epochs=60", "trainer.check_val_every_n_epoch=10", "logger=none")


def cancer_csv(tmp_path: Path) -> Path:
    """breast_cancer with the diagnosis as text and an id column, as hospitals export it."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame.insert(0, "patient_id", np.random.default_rng(0).permutation(len(frame)) + 1000)
    frame["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("values", "task", "expected"),
    [
        ([0, 1, 1, 0], "auto", "binary"),
        (["malignant", "benign", "benign", "benign"], "auto", "binary"),
        (["I", "II", "III", "II"], "auto", "multiclass"),
        ([1, 2, 3, 4, 5] * 5, "auto", "multiclass"),  # few integers: the ambiguous case
        ([1, 2, 3, 4, 5, 3], "auto", "regression"),  # ... unless a value has few rows
        ([1, 2, 3, 4, 5, 3], "regression", "regression"),  # ... which data.task overrides
        ([1.5, 2.25, 3.0, 7.1], "auto", "regression"),
        (list(range(40)), "auto", "regression"),
    ],
)
def test_task_is_inferred_from_the_target_or_chosen(values, task, expected):
    found, why = infer_task(pd.Series(values), "y", task, "t.csv")
    assert found == expected and why


@pytest.mark.parametrize(
    ("values", "task", "message"),
    [
        (["a", "b"], "regression", "target='y' in t.csv is not numeric \\(e.g. 'a'\\): regression"),
        ([1, 2, 3], "binary", "target='y' in t.csv has 3 values; data.task=binary needs 2"),
    ],
)
def test_a_target_that_cannot_be_the_chosen_task_is_refused(values, task, message):
    with pytest.raises(ValueError, match=message):
        infer_task(pd.Series(values), "y", task, "t.csv")


def test_a_zero_one_target_builds_a_classifier_not_a_regressor(make_config, tmp_path):
    frame = pd.DataFrame({"a": np.arange(60) % 7, "b": np.arange(60) % 5 * 1.5})
    frame["diagnosis"] = (frame["a"] > 3).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    for words in ([], ["module=classifier"]):  # inferred, or picked: no internal error
        composed = make_config(
            "data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=diagnosis", *words
        )
        datamodule = build_data(composed)
        module = build_module(composed, datamodule)
        assert isinstance(module, ClassifierModule) and module.binary
        assert datamodule.classes == ["0", "1"] and datamodule.task == "binary"
    composed = make_config("data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=b")
    datamodule = build_data(composed)
    assert isinstance(build_module(composed, datamodule), RegressorModule)  # 1.5 steps: numbers
    assert composed.cfg.module._target_ == "litlab.module.RegressorModule"  # recorded as built


def test_text_classes_train_report_and_predict_by_name(make_config, tmp_path, capsys):
    """The reported case: breast cancer with a text diagnosis; accuracy against
    scikit-learn's logistic regression on the same split; predict writes class names."""
    path = cancer_csv(tmp_path)
    run_dir, metrics = train(
        make_config("data=csv", f"data.path={path}", "data.target=diagnosis", *SHORT)
    )
    printed = capsys.readouterr().out
    assert "task: binary (text values, 2 classes)" in printed
    assert "classes: benign 357 (63%), malignant 212 (37%)" in printed
    assert "patient_id" in printed and "an id: all 569 values differ" in printed
    columns = pd.read_csv(run_dir / "columns.csv")
    assert columns.set_index("column").loc["patient_id", "became"] == "dropped"
    dm = CsvDataModule(str(path), "diagnosis")
    dm.setup()
    (x, y), (xt, yt) = dm.train, dm.test
    reference = LogisticRegression(max_iter=1000).fit(x.numpy(), y.numpy().ravel())
    logreg = accuracy_score(yt.numpy().ravel(), reference.predict(xt.numpy()))
    assert metrics["baseline/logreg/acc"] == pytest.approx(logreg)
    assert {"test/acc", "test/auroc", "baseline/svc/auroc"} <= set(metrics)
    assert metrics["test/acc"] >= logreg - 0.05
    rows = pd.read_csv(path).head(5)
    out = Predictor.from_checkpoint(run_dir / "checkpoints" / "best.ckpt").predict(rows)
    assert set(out["prediction"]) <= {"benign", "malignant"}
    assert (out["prediction"] == rows["diagnosis"]).mean() >= 0.8
    assert out["patient_id"].tolist() == rows["patient_id"].tolist()  # the id stays


def test_multiclass_text_grades_split_stratified(tmp_path):
    wine = load_wine(as_frame=True)
    frame = wine.frame.drop(columns="target").assign(
        grade=np.array(["I", "II", "III"])[wine.target]
    )
    frame.to_csv(tmp_path / "wine.csv", index=False)
    dm = CsvDataModule(str(tmp_path / "wine.csv"), "grade")
    dm.setup()
    assert dm.task == "multiclass" and dm.classes == ["I", "II", "III"] and dm.num_outputs == 3
    shares = [
        np.bincount(part[1].numpy(), minlength=3) / len(part[1]) for part in (dm.train, dm.test)
    ]
    np.testing.assert_allclose(shares[0], shares[1], atol=0.06)  # stratified
    assert set(dm.baselines()) >= {"baseline/logreg/acc", "baseline/logreg/f1"}


def messy_table(rows: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    age = rng.integers(20, 80, rows)
    frame = pd.DataFrame(
        {
            "record_id": np.arange(rows) + 1,
            "visit": pd.date_range("2020-01-01", periods=rows, freq="7D").strftime("%Y-%m-%d"),
            "site": "Leeds",
            "charges": [f"{v:,}" for v in rng.integers(500, 5000, rows)],
            "note": [f"free text {i}" for i in range(rows)],
            "smoker": rng.choice(["yes", "no"], rows),
            "age": age.astype(float),
        }
    )
    frame.loc[rng.choice(rows, 10, replace=False), "age"] = np.nan
    frame["y"] = age * 2.0 + rng.normal(0, 1, rows)
    return frame


def test_each_column_is_reported_and_useless_ones_are_dropped(tmp_path):
    messy_table().to_csv(tmp_path / "m.csv", index=False)
    dm = CsvDataModule(str(tmp_path / "m.csv"), "y")
    dm.setup()
    report = {r["column"]: (r["became"], r["why"]) for r in dm.column_report}
    assert report["record_id"] == ("dropped", "an id: all 80 values differ")
    assert (
        report["visit"][0] == "numeric" and "dates as days since 1970-01-01" in report["visit"][1]
    )
    assert report["site"] == ("dropped", "constant (every row is 'Leeds')")
    assert report["charges"][0] == "numeric" and "numbers written as text" in report["charges"][1]
    assert report["note"] == ("dropped", "an id: all 80 values differ")
    assert report["smoker"] == ("categorical", "2 levels")
    assert dm.input_columns == ["visit", "charges", "age", "smoker"]
    assert "rows: dropped 10 of 80 (12%) with a missing value (age 10)" in "\n".join(dm.lines)
    assert dm.encoder.numeric["visit"][1] > 18_000  # days since 1970, not 480 one-hot columns
    kept = CsvDataModule(str(tmp_path / "m.csv"), "y", keep=["site"], missing="impute")
    kept.setup()
    assert "site" in kept.input_columns and "filled 10 missing values" in "\n".join(kept.lines)


def test_semicolons_and_decimal_commas_read_as_the_comma_file(tmp_path):
    frame = messy_table().drop(columns=["charges"])
    frame.to_csv(tmp_path / "comma.csv", index=False)
    frame.to_csv(tmp_path / "semi.csv", index=False, sep=";", decimal=",")
    dms = [CsvDataModule(str(tmp_path / name), "y") for name in ("comma.csv", "semi.csv")]
    for dm in dms:
        dm.setup()
    assert dms[1].input_columns == dms[0].input_columns
    for a, b in zip(dms[0].train, dms[1].train, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    forced = CsvDataModule(str(tmp_path / "semi.csv"), "y", sep=",")
    with pytest.raises(ValueError, match="target='y': no such column"):
        forced.setup()


def test_eval_refuses_a_table_that_changed_since_training(make_config, tmp_path, capsys):
    path = tmp_path / "t.csv"
    frame = messy_table(120).drop(columns=["note"])
    frame.to_csv(path, index=False)
    run_dir, _ = train(make_config("data=csv", f"data.path={path}", "data.target=y", *SHORT))
    best = str(run_dir / "checkpoints" / "best.ckpt")
    assert main(["eval", best]) == 0
    frame.sample(frac=1, random_state=3).to_csv(path, index=False)  # a shuffled re-export
    capsys.readouterr()
    assert main(["eval", best]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "the table changed since training (fingerprint" in err
    assert "restore the file or train again" in err


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory):
    from litlab.config import compose

    folder = tmp_path_factory.mktemp("cohort")
    frame = messy_table(150).drop(columns=["note"])
    frame.to_csv(folder / "t.csv", index=False)
    words = [f"runs_dir={folder}/runs", "data=csv", f"data.path={folder}/t.csv", "data.target=y"]
    run_dir, _ = train(compose([*words, "data.missing=impute", *SHORT]))
    return run_dir / "checkpoints" / "best.ckpt", frame


def test_predict_ignores_extra_columns_and_counts_what_it_filled(cohort_run):
    checkpoint, frame = cohort_run
    predictor = Predictor.from_checkpoint(checkpoint)
    rows = frame.head(4).assign(comment="seen in clinic", age=[40.0, 50.0, 60.0, 70.0])
    rows.loc[0, "age"], rows.loc[1, "smoker"] = np.nan, "sometimes"
    out = predictor.predict(rows)
    assert out["problem"].tolist() == ["", "", "", ""] and out["prediction"].notna().all()
    assert out["record_id"].tolist() == rows["record_id"].tolist()
    notes = "\n".join(predictor.notes)
    assert "ignored columns the network does not use: record_id, site, y, comment" in notes
    assert "age: 1 missing, filled with the training median" in notes
    assert "smoker: 1 never seen in training ('sometimes')" in notes


def test_predict_flags_rows_it_cannot_answer(cohort_run, tmp_path, capsys):
    checkpoint, frame = cohort_run
    rows = frame.head(5).drop(columns=["y"]).assign(age=40.0).astype({"age": object})
    rows.loc[0, "age"], rows.loc[1, "age"], rows.loc[2, "age"] = "old", np.inf, 1e308
    path = tmp_path / "new.csv"
    rows.to_csv(path, index=False)
    with open(path, "a") as f:
        f.write("999,2021-01-01\n")  # a short row: 2 of 6 values
    assert main(["predict", str(checkpoint), str(path), str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["problem"].tolist()[:4] == [
        "age: old is not a number",
        "age=inf is far outside training",
        "age=1e+308 is far outside training",
        "",
    ]
    assert out["problem"].iloc[5] == "short row: 2 of 6 values"
    assert out["prediction"].iloc[0] == "" and out["prediction"].iloc[3] != ""
    printed = capsys.readouterr().out
    assert "2 predictions written" in printed and "4 rows not predicted" in printed
    assert "smoker" not in printed  # the short row's gaps are not filled: it is refused


def test_predictions_are_written_as_the_rows_came(cohort_run, tmp_path):
    """A European spreadsheet's rows (`;`, decimal commas) get predictions it can open."""
    checkpoint, frame = cohort_run
    rows = frame.head(6).drop(columns=["y"])
    # charges is text with thousands commas ("4,508"); in a `;` file that reads 4.508
    rows["charges"] = rows["charges"].str.replace(",", "").astype(float)
    for name, dialect in (("comma", {}), ("semi", {"sep": ";", "decimal": ","})):
        rows.to_csv(tmp_path / f"{name}.csv", index=False, **dialect)
        out = tmp_path / f"{name}_out.csv"
        assert main(["predict", str(checkpoint), str(tmp_path / f"{name}.csv"), str(out)]) == 0
    semi = (tmp_path / "semi_out.csv").read_text()
    assert semi.splitlines()[0] == ";".join([*rows.columns, "prediction", "problem"])
    ours = ["prediction", "problem"]
    written = pd.read_csv(tmp_path / "semi_out.csv", sep=";", decimal=",")[ours]
    pd.testing.assert_frame_equal(written, pd.read_csv(tmp_path / "comma_out.csv")[ours])


def test_predict_on_points_refuses_values_that_are_not_numbers(tmp_path, make_config, capsys):
    run_dir, _ = train(make_config(*SHORT))
    checkpoint = str(run_dir / "checkpoints" / "best.ckpt")
    path = tmp_path / "p.csv"
    path.write_text("x1,x2\n0,0\nnan,0\ninf,0\n1e308,0\nabc,0\n0\n")
    assert main(["predict", checkpoint, str(path), str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["prediction"].tolist() == ["1", "", "", "", "", ""]  # the centre is class 1
    for problem, value in zip(
        out["problem"].iloc[1:5], ("nan", "inf", "1e308", "abc"), strict=True
    ):
        assert problem == f"x1={value} is not a finite number"
    assert out["problem"].iloc[5].startswith("short row: 1 of 2 values")
    binary = tmp_path / "b.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    assert main(["predict", checkpoint, str(binary), str(tmp_path / "o.csv")]) == 2
    assert "b.csv" in capsys.readouterr().err
