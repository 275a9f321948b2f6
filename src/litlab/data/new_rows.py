"""New rows to predict on a table: read as the training file was, their numbers and dates
as the training columns', checked against the stored encoding."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from litlab.data.base import add_problem, mark_short_rows, short_row_problems
from litlab.data.columns import parse_numbers, read_table
from litlab.data.encoding import TableEncoder

OUTLIER_STDS = 100  # training stds from the mean past which a value (1e308) is refused


def read_rows(path: Path, sep: str | None) -> pd.DataFrame:
    """New rows, read as the training file was; their dialect kept for the output."""
    frame, sep, decimal = read_table(path, sep)
    frame.attrs["csv"] = {"sep": sep, "decimal": decimal}
    return mark_short_rows(frame, path, sep)


def as_trained(
    frame: pd.DataFrame, encoder: TableEncoder, decimal: str, date_formats: dict[str, str]
) -> pd.DataFrame:
    """`frame`, its numeric columns read as the training file's were ("1,175", dates)."""
    numbers = {c: parse_numbers(frame[c], decimal, date_formats.get(c)) for c in encoder.numeric}
    return frame.assign(**numbers)


def row_problems(
    frame: pd.DataFrame, encoder: TableEncoder, decimal: str, date_formats: dict[str, str]
) -> tuple[pd.Series, list[str]]:
    """Why each row cannot be predicted ('' when it can), and notes on what is filled in."""
    problems, notes = short_row_problems(frame), []
    numbers = as_trained(frame, encoder, decimal, date_formats)
    for column, (_, mean, scale) in encoder.numeric.items():
        values, parsed = frame[column], numbers[column]
        text = parsed.isna() & values.notna()
        far = values.notna() & ~text & ~((parsed - mean).abs() <= OUTLIER_STDS * scale)
        shown = values.astype(str)
        problems = add_problem(problems, text, column + ": " + shown + " is not a number")
        problems = add_problem(problems, far, column + "=" + shown + " is far outside training")
        if filled := int((values.isna() & (problems == "")).sum()):
            notes.append(f"{column}: {filled} missing, filled with the training median")
    for column, (_, *categories) in encoder.categorical.items():
        values = frame[column]
        unseen = values.notna() & ~values.astype(str).isin(categories)
        if unseen.any():
            shown = ", ".join(map(repr, values[unseen].astype(str).unique()[:3]))
            notes.append(f"{column}: {int(unseen.sum())} never seen in training ({shown})")
        if missing := int((values.isna() & (problems == "")).sum()):
            notes.append(f"{column}: {missing} missing, filled with the most frequent category")
    return problems, notes
