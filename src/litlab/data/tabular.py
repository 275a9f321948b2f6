"""Tables of patients: any CSV table a user brings, or scikit-learn's diabetes data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_diabetes
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
from litlab.data.base import TensorDataModule
from litlab.data.columns import (
    class_names,
    fingerprint,
    infer_task,
    label_text,
    prepare_columns,
    read_table,
    select_columns,
    sniff_delimiter,
)
from litlab.data.encoding import TableEncoder
from litlab.data.leaks import name_leaks
from litlab.data.new_rows import as_trained, read_rows, row_problems
from litlab.data.split import Folds, check_classes, check_split, split_rows
from litlab.distributed import is_rank_zero

Task = Literal["auto", "binary", "multiclass", "regression"]
TASKS = get_args(Task)


class CsvDataModule(TensorDataModule):
    """Classification or regression on a CSV table (its delimiter and decimal mark found,
    or `sep`): `features` predict `target`, as `task` says or as the target suggests.

    The table is read in `setup` (by `read`), so a module rebuilt from a checkpoint's
    config for predictions needs no file: `load_state_dict` gives it the encoding learned
    from the training rows, the task and its class names. Columns that cannot carry
    signal are dropped (columns.py says which and why), rows with a missing target too;
    rows with other missing values are dropped (`missing="drop"`) or filled from the
    training rows (`missing="impute"`). Classes are split stratified. With `scale_target`,
    a regression network learns the standardised target, and the module reports its
    metrics in the target's own units.
    """

    def __init__(
        self,
        path: str,
        target: str,
        features: list[str] | None = None,
        task: Task = "auto",
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
        super().__init__(batch_size, seed=random_state)
        if missing not in ("drop", "impute"):
            raise ValueError(f"missing={missing!r}: must be 'drop' or 'impute'")
        if task not in TASKS:
            raise ValueError(f"task={task!r}: must be one of {', '.join(TASKS)}")
        self.path, self.sep = Path(path).expanduser(), sep
        self.target, self.features, self.missing = target, features, missing
        self.keep, self.drop, self.max_levels = list(keep or []), list(drop or []), max_levels
        self.dayfirst, self.scale_target = dayfirst, scale_target
        self.fractions, self.random_state = (val_fraction, test_fraction), random_state
        self.folds, self.fold = folds, fold
        self.task, self.asked_task = task, task
        self.encoder: TableEncoder | None = None
        self.date_formats: dict[str, str] = {}  # column -> strptime format of its dates
        self.target_mean, self.target_std = 0.0, 1.0
        self.classes: list[str] = []  # class names, in the order of the network's outputs
        self.fingerprint = ""  # of the rows used: eval refuses a table that changed
        self.decimal = "."  # the file's decimal mark (a comma with semicolons)
        self.how = ""  # how the file was read: its delimiter and decimal mark
        self.lines: list[str] = []  # what the run's report says of the task and the rows
        self.column_report: list[dict[str, str]] = []  # what each column became, and why

    def read(self) -> tuple[pd.DataFrame, str]:
        """The whole table, and where it came from (for messages)."""
        frame, self.how = read_table(self.path, self.sep)
        self.decimal = sniff_delimiter(self.path, self.sep)[1]
        return frame, str(self.path)

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
        frame = select_columns(raw, source, self.target, self.features, self.drop)
        self.task, why = infer_task(frame[self.target], self.target, self.asked_task, source)
        y = self._labels(frame[self.target])
        no_target = int(y.isna().sum())
        frame, y = frame[y.notna()], y[y.notna()]
        check_split(len(frame), *self.fractions, self.folds, classes=len(self.classes) or 1)
        features, self.column_report, self.date_formats = prepare_columns(
            frame.drop(columns=self.target), self.decimal, self.keep, self.max_levels, self.dayfirst
        )
        if features.shape[1] == 0:
            dropped = "; ".join(f"{r['column']} {r['why']}" for r in self.column_report)
            raise ValueError(f"no usable feature in {source}: {dropped or 'no columns'}")
        self.lines = [
            f"task: {self.task} ({why})",
            f"rows: {len(raw)} read from {source}{self.how}",
        ]
        if no_target:
            self.lines.append(f"rows: dropped {no_target} with no {self.target} value")
        features, y, gaps = self._missing(features, y)
        if self.classes:
            self._check_classes(y, source, gaps)
        self.fingerprint = fingerprint(features.assign(**{f"{self.target} (target)": y}))
        strata = y.to_numpy() if self.classes else None
        parts = split_rows(
            len(y), *self.fractions, self.random_state, strata, self.folds, self.fold
        )
        rows = [(features.iloc[part], y.iloc[part]) for part in parts]
        (x_train, y_train), _, _ = rows
        leaks = name_leaks(x_train, y_train, bool(self.classes), self.target, self.column_report)
        self.lines += leaks
        self.encoder = TableEncoder.fit(x_train)
        if self.scale_target and not self.classes:
            y_train = y_train.to_numpy(dtype=float)
            self.target_mean, self.target_std = float(y_train.mean()), float(y_train.std()) or 1.0
        self.train, self.val, self.test = (self._tensors(x, y) for x, y in rows)

    def _labels(self, target: pd.Series) -> pd.Series:
        """The target as numbers: class indices (setting `classes`), or its values."""
        if self.task == "regression":
            self.classes = []
            return pd.to_numeric(target, errors="coerce")
        self.classes = class_names(target)
        index = {name: i for i, name in enumerate(self.classes)}
        return label_text(target).map(index).astype(float)

    def _missing(self, features: pd.DataFrame, y: pd.Series) -> tuple[pd.DataFrame, pd.Series, str]:
        """Rows with a missing feature dropped, or kept for the encoder to fill; said. Also
        the missing values of each column in the rows dropped (`bmi 15`), or ''."""
        gaps = features.isna()
        counts = ", ".join(f"{c} {n}" for c, n in gaps.sum().items() if n)
        incomplete = gaps.any(axis=1)
        n = int(incomplete.sum())
        if n and self.missing == "drop":
            self.lines.append(
                f"rows: dropped {n} of {len(y)} ({n / len(y):.0%}) with a missing value "
                f"({counts}); data.missing=impute keeps them"
            )
            return features[~incomplete], y[~incomplete], counts
        if n:
            self.lines.append(
                f"rows: filled {int(gaps.to_numpy().sum())} missing values in {n} rows "
                f"from the training rows (median / most frequent): {counts}"
            )
        return features, y, ""

    def _check_classes(self, y: pd.Series, source: str, gaps: str) -> None:
        """Say how many rows each class has; refuse a class too small to split."""
        counts = y.value_counts().reindex(range(len(self.classes)), fill_value=0)
        shares = [f"{c} {n} ({n / len(y):.0%})" for c, n in zip(self.classes, counts, strict=True)]
        self.lines.insert(1, "classes: " + ", ".join(shares))
        counts = dict(zip(self.classes, map(int, counts), strict=True))
        check_classes(counts, self.target, self.folds, source, gaps)

    def _tensors(self, x: pd.DataFrame, y: pd.Series) -> tuple[torch.Tensor, torch.Tensor]:
        if self.task == "multiclass":
            return self.inputs(x), torch.tensor(y.to_numpy(dtype=np.int64))
        target = (y.to_numpy(dtype=float) - self.target_mean) / self.target_std
        return self.inputs(x), torch.tensor(target, dtype=torch.float32).reshape(-1, 1)

    def inputs(self, frame: pd.DataFrame) -> torch.Tensor:
        return torch.from_numpy(self.encoder.transform(self._numbers(frame)))

    def _numbers(self, frame: pd.DataFrame) -> pd.DataFrame:
        return as_trained(frame, self.encoder, self.decimal, self.date_formats)

    def read_rows(self, path: Path) -> pd.DataFrame:
        frame = read_rows(path, self.sep)
        self.decimal = frame.attrs["csv"]["decimal"]
        return frame

    def check_rows(self, frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
        return row_problems(frame, self.encoder, self.decimal, self.date_formats)

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


class DiabetesDataModule(CsvDataModule):
    """scikit-learn's diabetes table: 442 patients, 10 raw (unscaled) measurements, and
    the disease progression one year later. It ships inside scikit-learn: no file."""

    read_rows = TensorDataModule.read_rows  # new rows: a plain CSV file

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
            path="",
            target="target",
            task="regression",
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            random_state=random_state,
            batch_size=batch_size,
            scale_target=scale_target,
            folds=folds,
            fold=fold,
        )

    def read(self) -> tuple[pd.DataFrame, str]:
        return load_diabetes(scaled=False, as_frame=True).frame, "scikit-learn's load_diabetes"
