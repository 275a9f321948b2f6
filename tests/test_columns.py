"""Tables as hospitals export them: dates in every common form, a possible leak named, and
a class too small to split said in litlab's words."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from litlab.cli import main
from litlab.data import CsvDataModule
from litlab.data.columns import date_format

DAYS = pd.Timestamp("1984-08-17") + pd.to_timedelta(np.arange(40) * 11, unit="D")
EPOCH_DAYS = ((DAYS - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy()


def table(tmp_path: Path, dates: list[str], **columns: object) -> Path:
    """40 rows: a date column, a measurement, and a target that is neither."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"surgery": dates, "size": rng.normal(20, 5, 40), **columns})
    frame["grade"] = rng.choice(["I", "II"], 40)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def read(path: Path, **options: object) -> CsvDataModule:
    dm = CsvDataModule(str(path), "grade", **options)
    dm.setup()
    return dm


@pytest.mark.parametrize(
    "form",
    [
        "%Y-%m-%d",  # ISO
        "%Y-%m-%dT%H:%M:%S",
        "%Y/%m/%d",
        "%d-%m-%Y",  # day-first: 17-08-1984 was dropped as "40 levels > max_levels"
        "%d.%m.%Y",
        "%d/%m/%Y",
        "%d.%m.%Y %H:%M",
        "%m/%d/%Y",  # month-first
        "%m-%d-%Y",
        "%m.%d.%Y %H:%M:%S",
    ],
)
def test_each_common_date_form_is_read_as_days_since_1970(tmp_path, form):
    dm = read(table(tmp_path, list(DAYS.strftime(form))))
    (row,) = [r for r in dm.column_report if r["column"] == "surgery"]
    assert row["became"] == "numeric", row
    assert row["why"].startswith("parsed from dates as days since 1970-01-01")
    assert "ambiguous" not in row["why"]  # 17 in the day field settles the order
    frame = pd.read_csv(dm.path)
    np.testing.assert_allclose(dm._numbers(frame)["surgery"], EPOCH_DAYS)


def test_dates_with_and_without_a_time_in_one_column():
    values = pd.Series(["17-08-1984", "18-08-1984 06:00", "19-08-1984 12:00:30", None])
    fmt, note = date_format(values, None)
    assert (fmt, note) == ("%d-%m-%Y", "")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["17-08-1984", "08-17-1984"], None),  # both orders: not one form
        (["17-08-1984", "1984-08-17"], None),
        (["17-08-1984", "17/08/1984"], None),
        (["2021-03-04", "yesterday"], None),
    ],
)
def test_a_column_of_mixed_forms_is_not_read_as_dates(values, expected):
    assert date_format(pd.Series(values), None) is expected


def test_an_ambiguous_column_says_how_it_was_read_and_the_key_that_changes_it(tmp_path):
    early = DAYS[DAYS.day <= 12][:4]  # every day and month 12 or less
    dates = list(np.resize(early.strftime("%d-%m-%Y"), 40))
    path = table(tmp_path, dates)
    (row,) = [r for r in read(path).column_report if r["column"] == "surgery"]
    assert row["why"] == (
        "parsed from dates as days since 1970-01-01 (DD-MM-YYYY); ambiguous: every day and "
        "month is 12 or less; read as DD-MM-YYYY (by the separator '-'); data.dayfirst=false "
        "reads them month-first"
    )
    month_first = read(path, dayfirst=False)
    (row,) = [r for r in month_first.column_report if r["column"] == "surgery"]
    assert (
        "read as MM-DD-YYYY (by data.dayfirst); data.dayfirst=true reads them day-first"
        in (row["why"])
    )
    # new rows are read as the training column was, not as they alone would suggest
    new = pd.DataFrame({"surgery": ["03-04-2021"], "size": [20.0]})
    days = month_first._numbers(new)["surgery"].iloc[0]
    assert days == (pd.Timestamp("2021-03-04") - pd.Timestamp("1970-01-01")).days


def test_a_column_that_alone_predicts_the_target_is_named_a_possible_leak(tmp_path):
    rng = np.random.default_rng(1)
    grade = rng.choice(["I", "II"], 40)
    # days to recurrence: short exactly for grade II, as an outcome recorded afterwards
    rfs_days = np.where(grade == "II", rng.integers(30, 300, 40), rng.integers(400, 3000, 40))
    path = table(tmp_path, list(DAYS.strftime("%Y-%m-%d")), rfs_days=rfs_days)
    frame = pd.read_csv(path).assign(grade=grade)
    frame.to_csv(path, index=False)
    dm = read(path)
    leaks = [line for line in dm.lines if "leak" in line]
    assert leaks == [
        "possible leak: rfs_days alone predicts grade on the training rows (balanced accuracy "
        "1.000, a small tree): is it known only after the outcome, or grade under another "
        "name? Training goes on; data.drop=[rfs_days] leaves it out"
    ]
    (row,) = [r for r in dm.column_report if r["column"] == "rfs_days"]
    assert row["became"] == "numeric" and row["why"] == "possible leak: alone it scores 1.000"
    assert dm.train  # training goes on
    dropped = read(path, drop=["rfs_days"])
    assert "rfs_days" not in dropped.input_columns
    assert not [line for line in dropped.lines if "leak" in line]


def test_too_few_rows_of_a_class_is_one_line_in_our_words(tmp_path, capsys):
    grades = ["I"] * 20 + ["II"] * 19 + ["III"]
    path = table(tmp_path, list(DAYS.strftime("%Y-%m-%d")))
    pd.read_csv(path).assign(grade=grades).to_csv(path, index=False)
    words = ["train", f"runs_dir={tmp_path}/runs", "data=csv", f"data.path={path}"]
    assert main([*words, "data.target=grade"]) == 2
    assert capsys.readouterr().err == (
        f"litlab: {path}: target 'grade': class 'III' has 1 row; a "
        "stratified split needs at least 3 rows of each class: merge it into another class, "
        "leave its rows out, or read grade as numbers (data.task=regression)\n"
    )
    assert main([*words, "data.target=grade", "data.folds=10"]) == 2
    assert "class 'III' has 1 row; a stratified split needs at least 10 rows of each class " in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "runs").exists()


def test_a_class_emptied_by_dropping_missing_values_says_so(tmp_path, capsys):
    """Days to relapse, recorded for the relapsed only: dropping rows with a missing value
    leaves no row of the other class, and the line must say why, not just "0 rows"."""
    path = table(tmp_path, list(DAYS.strftime("%Y-%m-%d")))
    frame = pd.read_csv(path)
    outcome = np.where(np.arange(len(frame)) % 2, "relapse", "no relapse")
    days = np.where(outcome == "relapse", 100.0 + np.arange(len(frame)), np.nan)
    frame.assign(outcome=outcome, relapse_days=days).to_csv(path, index=False)
    words = ["train", f"runs_dir={tmp_path}/runs", "data=csv", f"data.path={path}"]
    assert main([*words, "data.target=outcome"]) == 2
    assert capsys.readouterr().err == (
        f"litlab: {path}: target 'outcome': class 'no relapse' has 0 rows once the rows "
        f"with a missing value are dropped (relapse_days {len(frame) // 2}); a stratified "
        "split needs at least 3 rows of each class: merge it into another class, leave its "
        "rows out, keep those rows (data.missing=impute), or read outcome as numbers "
        "(data.task=regression)\n"
    )
    assert not (tmp_path / "runs").exists()


def survival_table(path: Path, rows: int = 200) -> None:
    """A survival study as packages ship them: an id, day-first dates, a text grade that
    the measurements do not predict (I 20%, II 65%, III 15%), missing values, and the days
    to recurrence, recorded after the outcome."""
    rng = np.random.default_rng(3)
    recurred = rng.random(rows) < 0.4
    frame = pd.DataFrame(
        {
            "pid": np.arange(rows) + 5000,
            "surgery": (
                pd.Timestamp("2001-01-01") + pd.to_timedelta(rng.integers(0, 3000, rows), "D")
            ).strftime("%d.%m.%Y"),
            "age": rng.integers(30, 80, rows).astype(float),
            "size": rng.normal(20, 5, rows),
            "grade": rng.choice(["I", "II", "III"], rows, p=[0.2, 0.65, 0.15]),
            "rfs_days": np.where(
                recurred, rng.integers(30, 900, rows), rng.integers(1000, 3000, rows)
            ),
            "recurrence": np.where(recurred, "yes", "no"),
        }
    )
    frame.loc[rng.choice(rows, 15, replace=False), "size"] = np.nan
    frame.to_csv(path, index=False)


def test_a_survival_table_trains_with_its_trivial_baseline_and_an_honest_verdict(
    make_config, tmp_path, capsys
):
    from litlab.cli import _report
    from litlab.train import train

    survival_table(tmp_path / "gbsg.csv")
    words = ["data=csv", f"data.path={tmp_path / 'gbsg.csv'}", "data.missing=impute"]
    short = ["trainer.max_epochs=60", "trainer.check_val_every_n_epoch=10", "logger=none"]
    _, metrics = train(make_config(*words, "data.target=grade", *short))
    printed = capsys.readouterr().out
    dates = r"surgery\s+numeric\s+parsed from dates as days since 1970-01-01 \(DD\.MM\.YYYY\)"
    assert re.search(dates, printed), printed
    # always "II": its share of the test rows, which the run's own split gives
    dm = CsvDataModule(str(tmp_path / "gbsg.csv"), "grade", missing="impute")
    dm.setup()
    test_labels = dm.test[1].numpy()
    assert metrics["baseline/majority/acc"] == pytest.approx(np.mean(test_labels == 1))
    assert {"baseline/majority/f1", "baseline/svc/acc", "baseline/logreg/f1"} <= set(metrics)
    _report("runs/x", metrics)
    lines = capsys.readouterr().out.splitlines()
    # the inputs say nothing of the grade: the network is no better than always "II"
    mine, majority = metrics["test/acc"], metrics["baseline/majority/acc"]
    assert (
        "the network does no better than majority (always the most frequent training class): "
        f"test/acc {mine:.4f} against {majority:.4f}"
    ) in lines
    _, leaked = train(make_config(*words, "data.target=recurrence", *short))
    printed = capsys.readouterr().out
    assert "possible leak: rfs_days alone predicts recurrence" in printed
    assert leaked["test/acc"] > 0.9  # the leak at work
