"""Tables of patients: scikit-learn's diabetes data, or any CSV table a user brings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typing_extensions import override

from litlab.baselines import fit_and_score, regression_scores, regressors
from litlab.data.base import TensorDataModule
from litlab.data.split import Folds, check_split, split_rows


class TableEncoder:
    """Model inputs from table rows, learned from the training rows only.

    Numeric columns: missing values filled with the training median, then standardised.
    Other columns: one-hot over the categories seen in training; a category never seen
    encodes as all zeros, a missing one as the most frequent. scikit-learn fits these;
    the encoder keeps only what they learned, as plain numbers and strings, so it can
    travel inside a checkpoint that loads with `torch.load(weights_only=True)`.
    """

    def __init__(self, numeric: dict[str, list[float]], categorical: dict[str, list[str]]):
        self.numeric = numeric  # column -> [fill, mean, scale]
        self.categorical = categorical  # column -> [fill, *categories]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> TableEncoder:
        numeric_columns = list(frame.select_dtypes("number").columns)
        other_columns = [c for c in frame.columns if c not in numeric_columns]
        numeric: dict[str, list[float]] = {}
        if numeric_columns:
            values = frame[numeric_columns].to_numpy(dtype=float)
            imputer = SimpleImputer(strategy="median").fit(values)
            scaler = StandardScaler().fit(imputer.transform(values))
            for i, column in enumerate(numeric_columns):
                numeric[column] = [imputer.statistics_[i], scaler.mean_[i], scaler.scale_[i]]
        categorical: dict[str, list[str]] = {}
        if other_columns:
            values = _as_text(frame[other_columns])
            imputer = SimpleImputer(strategy="most_frequent").fit(values)
            onehot = OneHotEncoder().fit(imputer.transform(values))
            for i, column in enumerate(other_columns):
                categorical[column] = [
                    str(imputer.statistics_[i]),
                    *map(str, onehot.categories_[i]),
                ]
        return cls({k: [float(v) for v in vs] for k, vs in numeric.items()}, categorical)

    @property
    def columns(self) -> list[str]:
        """Names of the encoded inputs, `column=category` for one-hot inputs."""
        onehot = [f"{c}={cat}" for c, (_, *cats) in self.categorical.items() for cat in cats]
        return [*self.numeric, *onehot]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, len(columns)) float32 inputs for `frame`'s rows."""
        parts = []
        for column, (fill, mean, scale) in self.numeric.items():
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            parts.append(((np.where(np.isnan(values), fill, values) - mean) / scale)[:, None])
        for column, (fill, *categories) in self.categorical.items():
            values = _as_text(frame[[column]])[:, 0]
            values = np.where(pd.isna(values), fill, values)
            parts.append(values[:, None] == np.asarray(categories, dtype=object)[None, :])
        return (
            np.hstack(parts).astype(np.float32) if parts else np.empty((len(frame), 0), np.float32)
        )

    def state_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical}


def _as_text(frame: pd.DataFrame) -> np.ndarray:
    """Category values as strings (an object array), missing ones as NaN."""
    return frame.map(lambda v: np.nan if pd.isna(v) else str(v)).to_numpy(dtype=object)


class TableDataModule(TensorDataModule):
    """Regression on a table: `features` predict the numeric `target`.

    The table is read in `setup` (by the subclass's `read`), so a module rebuilt from a
    checkpoint's config for predictions needs no file: `load_state_dict` gives it the
    encoding learned from the training rows. Rows with a missing target are dropped;
    rows with other missing values are dropped (`missing="drop"`) or filled from the
    training rows (`missing="impute"`). With `scale_target`, the network learns the
    standardised target, and the module reports its metrics in the target's own units.
    """

    task = "regression"

    def __init__(
        self,
        *,
        target: str,
        features: list[str] | None,
        missing: Literal["drop", "impute"],
        scale_target: bool,
        val_fraction: float,
        test_fraction: float,
        random_state: int,
        batch_size: int | None,
        folds: Folds,
        fold: int,
    ):
        super().__init__(batch_size, seed=random_state)
        if missing not in ("drop", "impute"):
            raise ValueError(f"missing={missing!r}: must be 'drop' or 'impute'")
        self.target, self.features, self.missing = target, features, missing
        self.scale_target = scale_target
        self.split = dict(val_fraction=val_fraction, test_fraction=test_fraction, seed=random_state)
        self.folds, self.fold = folds, fold
        self.encoder: TableEncoder | None = None
        self.target_mean, self.target_std = 0.0, 1.0

    def read(self) -> tuple[pd.DataFrame, str]:
        """The whole table, and where it came from (for messages)."""
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        return len(self.encoder.columns)

    @property
    def input_columns(self) -> list[str]:
        return [*self.encoder.numeric, *self.encoder.categorical]

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train:
            return
        frame, source = self.read()
        frame = _select(frame, source, self.target, self.features, self.missing)
        check_split(len(frame), self.split["val_fraction"], self.split["test_fraction"], self.folds)
        parts = split_rows(len(frame), **self.split, folds=self.folds, fold=self.fold)
        rows = [frame.iloc[part] for part in parts]
        features = frame.columns.drop(self.target)
        self.encoder = TableEncoder.fit(rows[0][features])
        if self.scale_target:
            y = rows[0][self.target].to_numpy(dtype=float)
            self.target_mean, self.target_std = float(y.mean()), float(y.std()) or 1.0
        self.train, self.val, self.test = (
            self._tensors(part[features], part[self.target]) for part in rows
        )

    def _tensors(self, x: pd.DataFrame, y: pd.Series) -> tuple[torch.Tensor, torch.Tensor]:
        target = (y.to_numpy(dtype=float) - self.target_mean) / self.target_std
        return self.inputs(x), torch.tensor(target, dtype=torch.float32).reshape(-1, 1)

    def inputs(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.from_numpy(self.encoder.transform(frame))

    def module_kwargs(self) -> dict[str, float]:
        """What the regressor needs to report in the target's units."""
        return {"target_mean": self.target_mean, "target_std": self.target_std}

    def unscale(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_std + self.target_mean

    def baselines(self) -> dict[str, float]:
        return fit_and_score(regressors(), self.train, self.test, regression_scores, self.unscale)

    @override
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: predictions on new rows need the same encoding."""
        return {
            "encoder": self.encoder.state_dict() if self.encoder else None,
            "target": self.target,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.encoder = TableEncoder(**state_dict["encoder"]) if state_dict["encoder"] else None
        self.target = state_dict["target"]
        self.target_mean, self.target_std = state_dict["target_mean"], state_dict["target_std"]


def _select(
    frame: pd.DataFrame, source: str, target: str, features: list[str] | None, missing: str
) -> pd.DataFrame:
    """The target and feature columns of `frame`, checked, with unusable rows dropped."""
    columns = ", ".join(map(str, frame.columns))
    if target not in frame.columns:
        raise ValueError(
            f"target={target!r}: no such column in {source}; its columns are: {columns}"
        )
    features = [c for c in frame.columns if c != target] if features is None else list(features)
    absent = [c for c in features if c not in frame.columns]
    if absent:
        names = ", ".join(map(repr, absent))
        raise ValueError(f"features: no column {names} in {source}; its columns are: {columns}")
    if target in features:
        raise ValueError(f"features: {target!r} is the target; leave it out of features")
    frame = frame[[*features, target]]
    for column in frame.columns:
        if frame[column].isna().all():
            raise ValueError(
                f"column {column!r} in {source} has no values: leave it out of features"
            )
    numbers = pd.to_numeric(frame[target], errors="coerce")
    bad = frame[target][numbers.isna() & frame[target].notna()]
    if len(bad):
        raise ValueError(
            f"target={target!r} in {source} is not numeric (e.g. {bad.iloc[0]!r}): "
            "regression needs numbers"
        )
    frame = frame.assign(**{target: numbers}).dropna(subset=[target])
    return frame.dropna() if missing == "drop" else frame


class DiabetesDataModule(TableDataModule):
    """scikit-learn's diabetes table: 442 patients, 10 raw (unscaled) measurements, and
    the disease progression one year later. It ships inside scikit-learn."""

    def __init__(
        self,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        random_state: int = 0,
        batch_size: int | None = None,
        scale_target: bool = True,
        folds: Folds = None,
        fold: int = 0,
    ):
        check_split(442, val_fraction, test_fraction, folds)
        super().__init__(
            target="target",
            features=None,
            missing="drop",
            scale_target=scale_target,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            random_state=random_state,
            batch_size=batch_size,
            folds=folds,
            fold=fold,
        )

    def read(self) -> tuple[pd.DataFrame, str]:
        return load_diabetes(scaled=False, as_frame=True).frame, "scikit-learn's load_diabetes"


class CsvDataModule(TableDataModule):
    """A table from a CSV file: numeric columns are scaled, others one-hot encoded."""

    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        missing: Literal["drop", "impute"] = "drop",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        random_state: int = 0,
        batch_size: int | None = None,
        scale_target: bool = True,
        folds: Folds = None,
        fold: int = 0,
    ):
        super().__init__(
            target=target,
            features=features,
            missing=missing,
            scale_target=scale_target,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            random_state=random_state,
            batch_size=batch_size,
            folds=folds,
            fold=fold,
        )
        self.path = Path(path).expanduser()

    def read(self) -> tuple[pd.DataFrame, str]:
        return _read_csv(self.path), str(self.path)


def _read_csv(file: Path) -> pd.DataFrame:
    if not file.is_file():
        raise ValueError(f"path={str(file)!r}: no such file")
    try:
        frame = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise ValueError(f"path={str(file)!r}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"path={str(file)!r}: not a CSV table ({exc})") from None
    if frame.empty:
        raise ValueError(f"path={str(file)!r}: the table has a header but no rows")
    return frame
