"""Tables of patients: scikit-learn's diabetes data, or any CSV table a user brings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typing_extensions import override

from litlab.baselines import (
    binary_scores,
    classifiers,
    fit_and_score,
    multiclass_scores,
    regression_scores,
    regressors,
)
from litlab.checkpoints import write_text
from litlab.data.base import TensorDataModule, short_row_problems
from litlab.data.columns import (
    class_names,
    fingerprint,
    infer_task,
    label_text,
    parse_numbers,
    prepare_columns,
    read_table,
    short_rows,
    sniff_delimiter,
)
from litlab.data.leaks import leak_line, possible_leaks
from litlab.data.split import Folds, check_classes, check_split, split_rows
from litlab.distributed import is_rank_zero

TASKS = ("auto", "binary", "multiclass", "regression")
# predict refuses a value this many training standard deviations from the training mean
# (1e308, a unit mistake): the network's answer there is an extrapolation of nothing.
OUTLIER_STDS = 100


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
    """Classification or regression on a table: `features` predict `target`.

    The table is read in `setup` (by the subclass's `read`), so a module rebuilt from a
    checkpoint's config for predictions needs no file: `load_state_dict` gives it the
    encoding learned from the training rows, the task and its class names. Columns that
    cannot carry signal are dropped (columns.py says which and why), rows with a missing
    target too; rows with other missing values are dropped (`missing="drop"`) or filled
    from the training rows (`missing="impute"`). Classes are split stratified. With
    `scale_target`, a regression network learns the standardised target, and the module
    reports its metrics in the target's own units.
    """

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
        task: Literal["auto", "binary", "multiclass", "regression"] = "regression",
        keep: list[str] | None = None,
        max_levels: int = 50,
        dayfirst: bool | None = None,
        drop: list[str] | None = None,
    ):
        super().__init__(batch_size, seed=random_state)
        if missing not in ("drop", "impute"):
            raise ValueError(f"missing={missing!r}: must be 'drop' or 'impute'")
        if task not in TASKS:
            raise ValueError(f"task={task!r}: must be one of {', '.join(TASKS)}")
        self.target, self.features, self.missing = target, features, missing
        self.scale_target, self.keep, self.max_levels = scale_target, list(keep or []), max_levels
        self.dayfirst, self.drop = dayfirst, list(drop or [])
        self.date_formats: dict[str, str] = {}  # column -> strptime format of its dates
        self.split = dict(val_fraction=val_fraction, test_fraction=test_fraction, seed=random_state)
        self.folds, self.fold = folds, fold
        self.task, self.asked_task = task, task
        self.encoder: TableEncoder | None = None
        self.target_mean, self.target_std = 0.0, 1.0
        self.classes: list[str] = []  # class names, in the order of the network's outputs
        self.fingerprint = ""  # of the rows used: eval refuses a table that changed
        self.decimal = "."  # the file's decimal mark (a comma with semicolons)
        self.how = ""  # how the file was read: its delimiter and decimal mark
        self.lines: list[str] = []  # what the run's report says of the task and the rows
        self.column_report: list[dict[str, str]] = []  # what each column became, and why

    def read(self) -> tuple[pd.DataFrame, str]:
        """The whole table, and where it came from (for messages)."""
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        return len(self.encoder.columns)

    @property
    def num_outputs(self) -> int:  # type: ignore[override]
        return len(self.classes) if self.task == "multiclass" else 1

    @property
    def input_columns(self) -> list[str]:  # type: ignore[override]
        return [*self.encoder.numeric, *self.encoder.categorical]

    @property
    def module_target(self) -> str:
        """The LightningModule that fits this table's task (what module=auto builds)."""
        name = "RegressorModule" if self.task == "regression" else "ClassifierModule"
        return f"litlab.module.{name}"

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train:
            return
        raw, source = self.read()
        frame = _select(raw, source, self.target, self.features, self.drop)
        self.task, why = infer_task(frame[self.target], self.target, self.asked_task, source)
        y = self._labels(frame[self.target])
        no_target = int(y.isna().sum())
        frame, y = frame[y.notna()], y[y.notna()]
        classes = len(self.classes) or 1
        check_split(len(frame), *self.split_fractions, self.folds, classes=classes)
        features, self.column_report, self.date_formats = prepare_columns(
            frame.drop(columns=self.target), self.decimal, self.keep, self.max_levels, self.dayfirst
        )
        if features.shape[1] == 0:
            raise ValueError(f"no usable feature in {source}: {_dropped(self.column_report)}")
        self.lines = [
            f"task: {self.task} ({why})",
            f"rows: {len(raw)} read from {source}{self.how}",
        ]
        if no_target:
            self.lines.append(f"rows: dropped {no_target} with no {self.target} value")
        gaps = _gaps(features)
        features, y = self._missing(features, y)
        if self.classes:
            self.lines.insert(1, "classes: " + _balance(y, self.classes))
            counts = y.value_counts().reindex(range(len(self.classes)), fill_value=0)
            counts = dict(zip(self.classes, map(int, counts), strict=True))
            dropped = gaps if self.missing == "drop" else ""
            check_classes(counts, self.target, self.folds, source, dropped)
        self.fingerprint = fingerprint(features.assign(**{f"{self.target} (target)": y}))
        strata = y.to_numpy() if self.classes else None
        parts = split_rows(len(y), **self.split, labels=strata, folds=self.folds, fold=self.fold)
        rows = [(features.iloc[part], y.iloc[part]) for part in parts]
        self._name_leaks(*rows[0])
        self.encoder = TableEncoder.fit(rows[0][0])
        if self.scale_target and not self.classes:
            train_y = rows[0][1].to_numpy(dtype=float)
            self.target_mean, self.target_std = float(train_y.mean()), float(train_y.std()) or 1.0
        self.train, self.val, self.test = (self._tensors(x, y) for x, y in rows)

    def _name_leaks(self, features: pd.DataFrame, y: pd.Series) -> None:
        """Say which columns alone predict the target almost perfectly on the training
        rows (possible leaks), in the notes and in their row of the column report."""
        found = possible_leaks(features, y, bool(self.classes))
        for column, score in found.items():
            self.lines.append(leak_line(column, score, self.target, bool(self.classes)))
        for row in self.column_report:
            if row["column"] in found:
                note = f"possible leak: alone it scores {found[row['column']]:.3f}"
                row["why"] = "; ".join(filter(None, [row["why"], note]))

    @property
    def split_fractions(self) -> tuple[float, float]:
        return self.split["val_fraction"], self.split["test_fraction"]

    def _labels(self, target: pd.Series) -> pd.Series:
        """The target as numbers: class indices (setting `classes`), or its values."""
        if self.task == "regression":
            self.classes = []
            return pd.to_numeric(target, errors="coerce")
        self.classes = class_names(target)
        index = {name: i for i, name in enumerate(self.classes)}
        return label_text(target).map(index).astype(float)

    def _missing(self, features: pd.DataFrame, y: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
        """Rows with a missing feature dropped, or kept for the encoder to fill; said."""
        gaps = features.isna()
        counts = _gaps(features)
        incomplete = gaps.any(axis=1)
        n = int(incomplete.sum())
        if n and self.missing == "drop":
            self.lines.append(
                f"rows: dropped {n} of {len(y)} ({n / len(y):.0%}) with a missing value "
                f"({counts}); data.missing=impute keeps them"
            )
            return features[~incomplete], y[~incomplete]
        if n:
            self.lines.append(
                f"rows: filled {int(gaps.to_numpy().sum())} missing values in {n} rows "
                f"from the training rows (median / most frequent): {counts}"
            )
        return features, y

    def _tensors(self, x: pd.DataFrame, y: pd.Series) -> tuple[torch.Tensor, torch.Tensor]:
        if self.task == "multiclass":
            return self.inputs(x), torch.tensor(y.to_numpy(dtype=np.int64))
        target = (y.to_numpy(dtype=float) - self.target_mean) / self.target_std
        return self.inputs(x), torch.tensor(target, dtype=torch.float32).reshape(-1, 1)

    def inputs(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.from_numpy(self.encoder.transform(self._numbers(frame)))

    def _numbers(self, frame: pd.DataFrame) -> pd.DataFrame:
        """New rows' numeric columns read as the training file's were (dates, "1,175")."""
        numbers = {c: self._parse(frame[c], c) for c in self.encoder.numeric}
        return frame.assign(**numbers)

    def _parse(self, values: pd.Series, column: str) -> pd.Series:
        """A column of new rows as numbers, its dates in the training column's format (a
        checkpoint from before formats were kept reads them as their values suggest)."""
        return parse_numbers(values, self.decimal, self.date_formats.get(column, True))

    def module_kwargs(self) -> dict[str, Any]:
        """What the module needs: the number of classes, or the target's scale."""
        if self.classes:
            return {"num_classes": len(self.classes)}
        return {"target_mean": self.target_mean, "target_std": self.target_std}

    def unscale(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_std + self.target_mean

    def baselines(self) -> dict[str, float]:
        if not self.classes:
            return fit_and_score(
                regressors(), self.train, self.test, regression_scores, self.unscale
            )
        score = binary_scores if self.task == "binary" else multiclass_scores
        return fit_and_score(classifiers(), self.train, self.test, score)

    def report(self, run_dir: Path) -> None:
        """Print what the task, the rows and each column became; save it in the run."""
        if not is_rank_zero():
            return
        table = pd.DataFrame(self.column_report)
        print(*self.lines, sep="\n")
        print(table.to_string(index=False))
        write_text(run_dir / "columns.csv", table.to_csv(index=False))
        data = {"task": self.task, "classes": self.classes, "fingerprint": self.fingerprint}
        write_text(run_dir / "data.json", json.dumps(data | {"notes": self.lines}, indent=2))

    def decode(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Class indices as the class names of the training table."""
        if not self.classes or "prediction" not in columns:
            return columns
        names = np.asarray(self.classes, dtype=object)
        return columns | {"prediction": names[columns["prediction"].astype(int)]}

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
        """Why each row cannot be predicted ('' when it can), and notes on what was
        filled: a missing value (the training median or most frequent category), and a
        category never seen in training (encoded as none of them)."""
        problems, notes = short_row_problems(frame), []
        for column, (_, mean, scale) in self.encoder.numeric.items():
            values = frame[column]
            numbers = self._parse(values, column)
            text = numbers.isna() & values.notna()
            far = values.notna() & ~text & ~((numbers - mean).abs() <= OUTLIER_STDS * scale)
            shown = values.astype(str)
            problems = _add(problems, text, column + ": " + shown + " is not a number")
            problems = _add(problems, far, column + "=" + shown + " is far outside training")
            filled = int((values.isna() & (problems == "")).sum())
            if filled:
                notes.append(f"{column}: {filled} missing, filled with the training median")
        for column, (_, *categories) in self.encoder.categorical.items():
            values = frame[column]
            unseen = values.notna() & ~values.astype(str).isin(categories)
            if unseen.any():
                shown = ", ".join(map(repr, values[unseen].astype(str).unique()[:3]))
                notes.append(f"{column}: {int(unseen.sum())} never seen in training ({shown})")
            missing = int((values.isna() & (problems == "")).sum())
            if missing:
                notes.append(f"{column}: {missing} missing, filled with the most frequent category")
        return problems, notes

    def verify(self, state: dict[str, Any]) -> None:
        """Refuse a table that is not the one the checkpoint was trained on."""
        stored = state.get("fingerprint")
        if stored and stored != self.fingerprint:
            raise ValueError(
                f"the table changed since training (fingerprint {self.fingerprint}, the "
                f"checkpoint's {stored}): its test split would differ; restore the file or "
                "train again"
            )

    @override
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: predictions on new rows need the same encoding."""
        return {
            "encoder": self.encoder.state_dict() if self.encoder else None,
            "target": self.target,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "task": self.task,
            "classes": self.classes,
            "fingerprint": self.fingerprint,
            "date_formats": self.date_formats,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.encoder = TableEncoder(**state_dict["encoder"]) if state_dict["encoder"] else None
        self.target = state_dict["target"]
        self.target_mean, self.target_std = state_dict["target_mean"], state_dict["target_std"]
        self.task = state_dict.get("task", "regression")
        self.classes = list(state_dict.get("classes", []))
        self.fingerprint = state_dict.get("fingerprint", "")
        self.date_formats = dict(state_dict.get("date_formats", {}))


def _add(problems: pd.Series, where: pd.Series, why: pd.Series) -> pd.Series:
    """`why` appended to the problems of the rows `where`."""
    joined = problems.where(problems == "", problems + "; ") + why
    return problems.where(~where, joined)


def _balance(y: pd.Series, classes: list[str]) -> str:
    counts = y.value_counts().reindex(range(len(classes)), fill_value=0)
    return ", ".join(
        f"{name} {n} ({n / len(y):.0%})" for name, n in zip(classes, counts, strict=True)
    )


def _dropped(report: list[dict[str, str]]) -> str:
    return "; ".join(f"{r['column']} {r['why']}" for r in report) or "no columns"


def _select(
    frame: pd.DataFrame,
    source: str,
    target: str,
    features: list[str] | None,
    drop: list[str] = (),
) -> pd.DataFrame:
    """The target and feature columns of `frame` (less those in `drop`), checked."""
    columns = ", ".join(map(str, frame.columns))
    if target not in frame.columns:
        raise ValueError(
            f"target={target!r}: no such column in {source}; its columns are: {columns}"
        )
    features = [c for c in frame.columns if c != target] if features is None else list(features)
    for key, names in (("features", features), ("drop", drop)):
        absent = [c for c in names if c not in frame.columns]
        if absent:
            shown = ", ".join(map(repr, absent))
            raise ValueError(f"{key}: no column {shown} in {source}; its columns are: {columns}")
    features = [c for c in features if c not in drop]
    if target in features:
        raise ValueError(f"features: {target!r} is the target; leave it out of features")
    frame = frame[[*features, target]]
    for column in frame.columns:
        if frame[column].isna().all():
            raise ValueError(
                f"column {column!r} in {source} has no values: leave it out of features"
            )
    return frame


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
    """A table from a CSV file (its delimiter and decimal mark found, or `sep`):
    classification or regression, as `task` says or as the target suggests."""

    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        task: Literal["auto", "binary", "multiclass", "regression"] = "auto",
        missing: Literal["drop", "impute"] = "drop",
        sep: str | None = None,
        keep: list[str] | None = None,
        max_levels: int = 50,
        dayfirst: bool | None = None,
        drop: list[str] | None = None,
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
            task=task,
            keep=keep,
            max_levels=max_levels,
            dayfirst=dayfirst,
            drop=drop,
        )
        self.path, self.sep = Path(path).expanduser(), sep

    def read(self) -> tuple[pd.DataFrame, str]:
        frame, self.how = read_table(self.path, self.sep)
        self.decimal = sniff_delimiter(self.path, self.sep)[1]
        return frame, str(self.path)

    def read_rows(self, path: Path) -> pd.DataFrame:
        """New rows, read as the training file was; short rows are marked for predict,
        and the file's delimiter and decimal mark kept for writing the predictions."""
        frame, _ = read_table(path, self.sep)
        sep, self.decimal = sniff_delimiter(path, self.sep)
        frame.attrs["short_rows"] = short_rows(path, sep)
        frame.attrs["csv"] = {"sep": sep, "decimal": self.decimal}
        return frame


def _gaps(features: pd.DataFrame) -> str:
    """The missing values of each column that has some: `bmi 15, relapse_days 168`."""
    return ", ".join(f"{c} {n}" for c, n in features.isna().sum().items() if n)
