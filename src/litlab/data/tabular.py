"""Tables: any CSV table a user brings, or scikit-learn's diabetes data."""

from __future__ import annotations

import json
from dataclasses import asdict
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
)
from litlab.data.encoding import TableEncoder
from litlab.data.leaks import name_leaks
from litlab.data.new_rows import as_trained, read_rows, row_problems
from litlab.data.split import Folds, check_classes, check_split, split_rows
from litlab.distributed import is_rank_zero

Task = Literal["auto", "binary", "multiclass", "regression"]
# what a checkpoint keeps, beside the encoder: new rows are read and encoded as in training
STATE = ("target", "target_mean", "target_std", "task", "classes", "fingerprint", "date_formats")


class CsvDataModule(TensorDataModule):
    """Classification or regression on a CSV table, read in `setup`: a module rebuilt for
    predict needs no file, the checkpoint's state gives it the encoding."""

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
        if task not in get_args(Task):
            raise ValueError(f"task={task!r}: must be one of {', '.join(get_args(Task))}")
        self.path, self.sep = Path(path).expanduser(), sep
        self.target, self.features, self.missing = target, features, missing
        self.keep, self.drop, self.max_levels = list(keep or []), list(drop or []), max_levels
        self.dayfirst, self.scale_target = dayfirst, scale_target
        self.fractions, self.folds, self.fold = (val_fraction, test_fraction), folds, fold
        self.task, self.asked_task = task, task
        self.encoder: TableEncoder | None = None
        self.date_formats: dict[str, str] = {}  # column -> strptime format of its dates
        self.target_mean, self.target_std = 0.0, 1.0
        self.classes: list[str] = []  # class names, in the order of the network's outputs
        self.fingerprint = ""  # of the rows used: eval refuses a table that changed
        self.decimal = "."  # the file's decimal mark
        self.lines: list[str] = []  # what the run's report says of the task and the rows
        self.column_report: list[dict[str, str]] = []  # what each column became, and why

    def read(self) -> tuple[pd.DataFrame, str, str]:
        """The whole table, where it came from, and how it was read."""
        frame, sep, self.decimal = read_table(self.path, self.sep)
        return frame, str(self.path), f" (delimiter {sep!r}, decimal mark {self.decimal!r})"

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
        return f"litlab.module.{'Regressor' if self.task == 'regression' else 'Classifier'}Module"

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.train:
            return
        raw, source, how = self.read()
        frame = select_columns(raw, source, self.target, self.features, self.drop)
        target = frame[self.target]
        self.task, why = infer_task(target, self.target, self.asked_task, source)
        self.classes = [] if self.task == "regression" else class_names(target)
        index = {name: float(i) for i, name in enumerate(self.classes)}
        y = label_text(target).map(index) if index else pd.to_numeric(target, errors="coerce")
        self.lines = [f"task: {self.task} ({why})", f"rows: {len(raw)} read from {source}{how}"]
        if no_target := int(y.isna().sum()):
            self.lines.append(f"rows: dropped {no_target} with no {self.target} value")
        frame, y = frame[y.notna()].drop(columns=self.target), y[y.notna()]
        check_split(len(frame), *self.fractions, self.folds, classes=len(self.classes) or 1)
        features, self.column_report, self.date_formats = prepare_columns(
            frame, self.decimal, self.keep, self.max_levels, self.dayfirst
        )
        if features.shape[1] == 0:
            dropped = "; ".join(f"{r['column']} {r['why']}" for r in self.column_report)
            raise ValueError(f"no usable feature in {source}: {dropped or 'no columns'}")
        features, y, gaps = self._missing(features, y)
        if self.classes:
            self._check_classes(y, source, gaps)
        self.fingerprint = fingerprint(features.assign(**{f"{self.target} (target)": y}))
        strata = y.to_numpy() if self.classes else None
        parts = split_rows(len(y), *self.fractions, self.seed, strata, self.folds, self.fold)
        rows = [(features.iloc[part], y.iloc[part]) for part in parts]
        (x, y), _, _ = rows
        self.lines += name_leaks(x, y, bool(self.classes), self.target, self.column_report)
        self.encoder = TableEncoder.fit(x)
        if self.scale_target and not self.classes:
            self.target_mean, self.target_std = float(y.mean()), float(y.std(ddof=0)) or 1.0
        self.train, self.val, self.test = (self._tensors(x, y) for x, y in rows)

    def _missing(self, features: pd.DataFrame, y: pd.Series) -> tuple[pd.DataFrame, pd.Series, str]:
        """Rows with a missing value dropped or kept to fill; what was dropped (`bmi 15`)."""
        gaps = features.isna()
        counts = ", ".join(f"{c} {n}" for c, n in gaps.sum().items() if n)
        incomplete = gaps.any(axis=1)
        if not (n := int(incomplete.sum())):
            return features, y, ""
        if self.missing == "impute":
            self.lines.append(
                f"rows: filled {int(gaps.to_numpy().sum())} missing values in {n} rows "
                f"from the training rows (median / most frequent): {counts}"
            )
            return features, y, ""
        self.lines.append(
            f"rows: dropped {n} of {len(y)} ({n / len(y):.0%}) with a missing value "
            f"({counts}); data.missing=impute keeps them"
        )
        return features[~incomplete], y[~incomplete], counts

    def _check_classes(self, y: pd.Series, source: str, gaps: str) -> None:
        """Say how many rows each class has; refuse a class too small to split."""
        found = y.value_counts()
        counts = {name: int(found.get(i, 0)) for i, name in enumerate(self.classes)}
        shares = [f"{c} {n} ({n / len(y):.0%})" for c, n in counts.items()]
        self.lines.insert(1, "classes: " + ", ".join(shares))
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
        if self.classes:
            return {"num_classes": len(self.classes)}
        return {"target_mean": self.target_mean, "target_std": self.target_std}

    def unscale(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_std + self.target_mean

    def baselines(self) -> dict[str, float]:
        if not self.classes:
            units = self.unscale
            return fit_and_score(regressors(), self.train, self.test, regression_scores, units)
        score = binary_scores if self.task == "binary" else multiclass_scores
        return fit_and_score(classifiers(), self.train, self.test, score)

    def report(self, run_dir: Path) -> None:
        """Print what the task, the rows and each column became; save it in the run."""
        if not is_rank_zero():
            return
        table = pd.DataFrame(self.column_report)
        print(*self.lines, table.to_string(index=False), sep="\n")
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
        if (stored := state.get("fingerprint")) and stored != self.fingerprint:
            raise ValueError(
                f"the table changed since training (fingerprint {self.fingerprint}, the "
                f"checkpoint's {stored}): its test split would differ; restore the file or "
                "train again"
            )

    @override
    def state_dict(self) -> dict[str, Any]:
        encoder = asdict(self.encoder) if self.encoder else None
        return {"encoder": encoder} | {key: getattr(self, key) for key in STATE}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        encoder = state_dict["encoder"]
        self.encoder = TableEncoder(**encoder) if encoder else None
        for key in STATE:
            setattr(self, key, state_dict[key])


class DiabetesDataModule(CsvDataModule):
    """scikit-learn's diabetes table: 442 patients, 10 raw measurements, progression."""

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
        kept = dict(random_state=random_state, batch_size=batch_size, scale_target=scale_target)
        split = dict(val_fraction=val_fraction, test_fraction=test_fraction, folds=folds, fold=fold)
        super().__init__("", "target", task="regression", **kept, **split)

    def read(self) -> tuple[pd.DataFrame, str, str]:
        return load_diabetes(scaled=False, as_frame=True).frame, "scikit-learn's load_diabetes", ""
