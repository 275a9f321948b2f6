"""Tables: the encoder against scikit-learn, the diabetes and CSV data modules, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from litlab.data import CsvDataModule, DiabetesDataModule
from litlab.data.encoding import TableEncoder

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "diabetes_cohort.csv"


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30.0, np.nan, 50.0, 70.0, 40.0],
            "smoker": ["yes", "no", None, "no", "no"],
            "region": ["north", "south", "south", "east", "north"],
        }
    ).astype({"smoker": object, "region": object})  # scikit-learn's imputer reads object columns


def test_encoder_matches_scikit_learns_pipelines():
    train = frame()
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()).fit(train[["age"]])
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    ).fit(train[["smoker", "region"]])
    encoder = TableEncoder.fit(train)
    new = pd.DataFrame({"age": [np.nan, 65.0], "smoker": ["yes", None], "region": ["west", "east"]})
    new = new.astype({"smoker": object, "region": object})
    for rows in (train, new):  # "west" was never seen: all zeros, as handle_unknown="ignore"
        reference = np.hstack(
            [numeric.transform(rows[["age"]]), categorical.transform(rows[["smoker", "region"]])]
        )
        np.testing.assert_allclose(encoder.transform(rows), reference, rtol=1e-6)
    assert encoder.columns == [
        "age",
        "smoker=no",
        "smoker=yes",
        "region=east",
        "region=north",
        "region=south",
    ]


def test_diabetes_features_are_raw_and_scaled_on_training_rows_only():
    dm = DiabetesDataModule()
    dm.setup()
    raw = load_diabetes(scaled=False).data
    assert dm.num_features == 10 and raw[:, 0].max() > 70  # ages in years, not pre-scaled
    x_train, y_train = dm.train
    assert x_train.mean(0).abs().max() < 1e-5  # standardised with the training rows' statistics
    assert dm.val[0].mean(0).abs().max() > 0.01  # ... which are not those of the other rows
    assert y_train.mean().abs() < 1e-5 and abs(y_train.std(unbiased=False).item() - 1) < 1e-4
    assert dm.unscale(y_train.numpy()).mean() == pytest.approx(dm.target_mean)
    assert sum(len(part[0]) for part in (dm.train, dm.val, dm.test)) == 442


def test_target_scaling_can_be_switched_off():
    dm = DiabetesDataModule(scale_target=False)
    dm.setup()
    assert dm.module_kwargs() == {"target_mean": 0.0, "target_std": 1.0}
    assert dm.train[1].mean() > 100  # progression in its own units


def test_csv_drop_or_impute_missing_values():
    dropped, imputed = (
        CsvDataModule(str(EXAMPLE), "progression"),
        CsvDataModule(str(EXAMPLE), "progression", missing="impute"),
    )
    for dm in (dropped, imputed):
        dm.setup()
    rows = lambda dm: sum(len(part[0]) for part in (dm.train, dm.val, dm.test))  # noqa: E731
    assert rows(imputed) == 442 and rows(dropped) == 442 - 12  # the example blanks 12 cells
    # bmi_class is one-hot encoded: four WHO bands seen in training
    assert imputed.num_features == 10 + 4 and "bmi_class=obese" in imputed.encoder.columns


def test_csv_feature_subset():
    dm = CsvDataModule(str(EXAMPLE), "progression", features=["age", "bmi", "bmi_class"])
    dm.setup()
    assert dm.encoder.columns[:2] == ["age", "bmi"] and dm.num_features == 2 + 4


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (None, {}, "no such file"),
        ("", {}, "the file is empty"),
        ("a,b,y\n", {}, "the table has a header but no rows"),
        ("a,b\n1,2\n", {}, "target='y': no such column in .*table.csv; its columns are: a, b"),
        (
            "a,y\n1,2\n",
            {"features": ["a", "c"]},
            "features: no column 'c' in .*; its columns are: a, y",
        ),
        (  # text is classes unless the task says regression
            "a,y\n1,high\n2,3\n",
            {"task": "regression"},
            "target='y' in .* is not numeric \\(e.g. 'high'\\)",
        ),
        ("a,b,y\n1,,2\n2,,3\n", {}, "column 'b' in .* has no values: leave it out of features"),
        (
            "a,y\n1,2\n2,3\n3,4\n",
            {},
            "val_fraction=0.15: must be in \\(0, 1\\) and hold at least 1 of the 3 rows",
        ),
        (
            "a,y\n" + "1,2\n" * 20,
            {"folds": 1},
            "folds=1: must be between 2 and the number of rows \\(20\\)",
        ),
        (
            "a,y\n" + "1,2\n" * 20,
            {"folds": 21},
            "folds=21: must be between 2 and the number of rows",
        ),
        ("a,y\n1,2\n", {"missing": "guess"}, "missing='guess': must be 'drop' or 'impute'"),
    ],
)
def test_bad_tables_name_the_file_and_the_column(tmp_path, text, kwargs, message):
    path = str(tmp_path / "absent.csv") if text is None else write(tmp_path, text)
    with pytest.raises(ValueError, match=message):  # by the time the data is prepared
        CsvDataModule(path, "y", **kwargs).setup("fit")
