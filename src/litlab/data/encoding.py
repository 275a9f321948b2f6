"""A table's columns as inputs, learned from the training rows by scikit-learn and kept as
plain numbers and strings (a checkpoint loads them with weights_only): numbers filled with
the median and standardised, other columns one-hot (unseen: zeros; missing: most frequent)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@dataclass
class TableEncoder:
    numeric: dict[str, list[float]]  # column -> [fill, mean, scale]
    categorical: dict[str, list[str]]  # column -> [fill, *categories]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> TableEncoder:
        numbers = frame.select_dtypes("number")
        text = frame.drop(columns=numbers.columns)
        numeric, categorical = {}, {}
        if numbers.shape[1]:
            values = numbers.to_numpy(dtype=float)
            fill = SimpleImputer(strategy="median").fit(values)
            scale = StandardScaler().fit(fill.transform(values))
            for c, *stats in zip(numbers, fill.statistics_, scale.mean_, scale.scale_, strict=True):
                numeric[c] = list(map(float, stats))
        if text.shape[1]:
            values = _as_text(text)
            fill = SimpleImputer(strategy="most_frequent").fit(values)
            onehot = OneHotEncoder().fit(fill.transform(values))
            for c, f, cats in zip(text, fill.statistics_, onehot.categories_, strict=True):
                categorical[c] = [str(f), *map(str, cats)]
        return cls(numeric, categorical)

    @property
    def columns(self) -> list[str]:
        """Names of the encoded inputs, `column=category` for one-hot inputs."""
        onehot = [f"{c}={cat}" for c, (_, *cats) in self.categorical.items() for cat in cats]
        return [*self.numeric, *onehot]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, len(columns)) float32 inputs for `frame`'s rows."""
        parts = [np.empty((len(frame), 0))]
        for column, (fill, mean, scale) in self.numeric.items():
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            parts.append(((np.where(np.isnan(values), fill, values) - mean) / scale)[:, None])
        for column, (fill, *categories) in self.categorical.items():
            values = _as_text(frame[[column]])[:, 0]
            values = np.where(pd.isna(values), fill, values)
            parts.append(values[:, None] == np.asarray(categories, dtype=object)[None, :])
        return np.hstack(parts).astype(np.float32)


def _as_text(frame: pd.DataFrame) -> np.ndarray:
    """Category values as strings (an object array), missing ones as NaN."""
    return frame.map(lambda v: np.nan if pd.isna(v) else str(v)).to_numpy(dtype=object)
