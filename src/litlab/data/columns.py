"""What a table's columns and target become before encoding: the file's delimiter, the
columns asked for, numbers and dates written as text, columns that cannot carry signal,
and the task. Each decision is a row of the column report, so a run says what each column
became and why (printed at its start, saved as `columns.csv` in its folder)."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DELIMITERS = ",;\t|"
# Integers with at most this many distinct values (each with 5 rows on average) are read
# as classes when the task is inferred: a grade or a stage, not a measurement.
# data.task=regression overrides it.
MAX_INTEGER_CLASSES = 10
# A date as text: year first (ISO's 2021-03-04, 2021/03/04) or last (04-03-2021,
# 04/03/2021, 04.03.2021), with the same separator twice, and maybe a time (10:30,
# 10:30:15, 10:30:15.5) after a space or a T.
DATE = re.compile(
    r"^(?:(\d{4})([-/.])(\d{1,2})\2(\d{1,2})|(\d{1,2})([-/.])(\d{1,2})\6(\d{4}))"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
# How a year-last column whose days and months are all 12 or less is read, unless
# data.dayfirst says: by its separator, as the countries that write it so mostly mean it
# (04/03/2021 the US's month-first, 04.03.2021 and 04-03-2021 Europe's day-first).
DAYFIRST_BY_SEPARATOR = {"/": False, "-": True, ".": True}
ID_NAME = re.compile(r"(^|_|\b)(id|ids|uuid|key|record|patient_?no|row)$|id$", re.IGNORECASE)


def sniff_delimiter(file: Path, sep: str | None) -> tuple[str, str]:
    """The delimiter (given, or the one of `,;\\t|` that splits the first lines alike)
    and the decimal mark that comes with it: a comma with semicolons (European
    spreadsheets), else a point."""
    if sep is None:
        with open(file, encoding="utf-8", errors="replace") as handle:
            sample = handle.read(64_000)
        try:
            sep = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
        except csv.Error:
            sep = ","
    return sep, "," if sep == ";" else "."


def read_table(file: Path, sep: str | None) -> tuple[pd.DataFrame, str]:
    """The table of a CSV file, and a line saying how it was read."""
    if not file.is_file():
        raise ValueError(f"path={str(file)!r}: no such file")
    sep, decimal = sniff_delimiter(file, sep)
    try:
        frame = pd.read_csv(file, sep=sep, decimal=decimal, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"path={str(file)!r}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"path={str(file)!r}: not a CSV table ({exc})") from None
    if frame.empty:
        raise ValueError(f"path={str(file)!r}: the table has a header but no rows")
    return frame, f" (delimiter {sep!r}, decimal mark {decimal!r})"


def short_rows(file: Path, sep: str) -> dict[int, int]:
    """Data rows (0-based) with fewer fields than the header, and how many they have:
    pandas fills them with missing values, which predict must not take as real."""
    with open(file, newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.reader(handle, delimiter=sep))
    width = len(rows[0]) if rows else 0
    return {i: len(r) for i, r in enumerate(rows[1:]) if r and len(r) < width}


def select_columns(
    frame: pd.DataFrame, source: str, target: str, features: list[str] | None, drop: list[str]
) -> pd.DataFrame:
    """The target and feature columns of `frame` (less those in `drop`), checked."""
    columns = ", ".join(map(str, frame.columns))
    if target not in frame.columns:
        raise ValueError(
            f"target={target!r}: no such column in {source}; its columns are: {columns}"
        )
    features = [c for c in frame.columns if c != target] if features is None else list(features)
    for key, names in (("features", features), ("drop", drop)):
        absent = ", ".join(repr(c) for c in names if c not in frame.columns)
        if absent:
            raise ValueError(f"{key}: no column {absent} in {source}; its columns are: {columns}")
    features = [c for c in features if c not in drop]
    if target in features:
        raise ValueError(f"features: {target!r} is the target; leave it out of features")
    frame = frame[[*features, target]]
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise ValueError(f"column {empty[0]!r} in {source} has no values: leave it out of features")
    return frame


def parse_numbers(values: pd.Series, decimal: str, dates: str | bool = True) -> pd.Series:
    """Each value as a number (thousands separators and the decimal mark read), NaN where
    it is none. A date counts as days since 1970-01-01: read with the format `dates`
    (strptime's, as `date_format` found it in training), or `True`, as these values
    suggest, or not at all (`False`)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    thousands = "." if decimal == "," else ","
    t, d = re.escape(thousands), re.escape(decimal)
    pattern = rf"^[+-]?(\d{{1,3}}({t}\d{{3}})+|\d+)({d}\d+)?([eE][+-]?\d+)?$"
    text = values.astype(str).str.strip()
    plain = text.where(values.notna() & text.str.match(pattern))
    plain = plain.str.replace(thousands, "", regex=False).str.replace(decimal, ".", regex=False)
    numbers = pd.to_numeric(plain, errors="coerce")
    numbers = numbers.fillna(pd.to_numeric(text.where(values.notna()), errors="coerce"))
    is_date = values.notna() & text.str.match(DATE) if dates is not False else None
    if is_date is not None and is_date.any():
        found = date_format(values[is_date], None) if dates is True else (dates, "")
        if found is not None:
            numbers[is_date] = _days(text[is_date], found[0])
    return numbers


def date_format(values: pd.Series, dayfirst: bool | None) -> tuple[str, str] | None:
    """The strptime format of a column of dates written as text, and a note when its
    reading was a choice; None unless every value is a date of one form.

    Written by hand: pandas parses a form once it is named, but guesses it from the first
    value only (`17-08-1984` then `03-04-1985` is an error), and its `dayfirst` is a hint
    that lets `17/08/1984` through in a month-first column. Here a value over 12 in the
    first field settles day-first, one in the second month-first; a column with neither is
    read as `dayfirst` says, or by its separator (DAYFIRST_BY_SEPARATOR), and the note
    says which and how to change it.
    """
    text = values.dropna().astype(str).str.strip()
    fields = text.str.extract(DATE)
    if text.empty or fields.isna().all(axis=1).any():
        return None
    if fields[0].notna().all():  # year first
        separator = fields[1].iloc[0]
        return (f"%Y{separator}%m{separator}%d", "") if fields[1].nunique() == 1 else None
    if fields[4].isna().any() or len(set(fields[5])) != 1:  # both forms, or two separators
        return None
    separator = fields[5].iloc[0]
    first, second = fields[4].astype(int), fields[6].astype(int)
    day_month, month_day = f"%d{separator}%m{separator}%Y", f"%m{separator}%d{separator}%Y"
    if (first > 12).any():
        return (day_month, "") if (second <= 12).all() else None
    if (second > 12).any():
        return month_day, ""
    chosen = DAYFIRST_BY_SEPARATOR[separator] if dayfirst is None else dayfirst
    shown = f"DD{separator}MM{separator}YYYY" if chosen else f"MM{separator}DD{separator}YYYY"
    other = "month-first" if chosen else "day-first"
    how = "data.dayfirst" if dayfirst is not None else f"the separator {separator!r}"
    note = (
        f"ambiguous: every day and month is 12 or less; read as {shown} (by {how}); "
        f"data.dayfirst={str(not chosen).lower()} reads them {other}"
    )
    return (day_month if chosen else month_day), note


def _days(text: pd.Series, fmt: str) -> pd.Series:
    """Days since 1970-01-01 of each date in `fmt`, with or without its time; NaN where
    it is none. pandas parses one form at a time: a time's missing parts are filled in."""
    parts = text.str.replace("T", " ").str.partition(" ").fillna("")
    date, time = parts[0], parts[2]
    pad = np.select(
        [time == "", time.str.count(":") == 1, ~time.str.contains(".", regex=False)],
        ["00:00:00.0", ":00.0", ".0"],
        "",
    )
    dates = pd.to_datetime(date + " " + time + pad, format=fmt + " %H:%M:%S.%f", errors="coerce")
    return (dates - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)


def looks_like_id(name: str, values: pd.Series) -> bool:
    """Every value different and either text, named like an id, or the row numbers
    (consecutive integers): it names a row, and says nothing a new row would share."""
    present = values.dropna()
    if len(present) < 2 or present.nunique() < len(present):
        return False
    if not pd.api.types.is_numeric_dtype(present):
        return True
    integers = bool((present % 1 == 0).all())
    consecutive = integers and present.max() - present.min() + 1 == len(present) >= 20
    return integers and (bool(ID_NAME.search(name)) or consecutive)


def prepare_columns(
    frame: pd.DataFrame,
    decimal: str,
    keep: list[str],
    max_levels: int,
    dayfirst: bool | None = None,
) -> tuple[pd.DataFrame, list[dict[str, str]], dict[str, str]]:
    """The usable feature columns (numbers and dates parsed), a report row per column
    (what it became and why), and the date format of each column read as dates. A column
    in `keep` is never dropped; `dayfirst` reads ambiguous dates (see `date_format`)."""
    kept, report, formats = {}, [], {}
    for name in frame.columns:
        values, became, fmt = frame[name], "", None
        if not pd.api.types.is_numeric_dtype(values):
            values, became, fmt = _read_text(values, decimal, dayfirst)
        if fmt:
            formats[str(name)] = fmt
        kind, why = _decide(str(name), values, max_levels)
        if kind == "dropped" and name in keep:  # the user insists
            numeric = pd.api.types.is_numeric_dtype(values)
            kind = "numeric" if numeric else "categorical"
            why = f"kept by data.keep (else dropped: {why})"
        why = "; ".join(filter(None, [became, why]))
        report.append({"column": str(name), "became": kind, "why": why})
        if kind != "dropped":
            kept[name] = values
    return pd.DataFrame(kept, index=frame.index), report, formats


def _read_text(
    values: pd.Series, decimal: str, dayfirst: bool | None
) -> tuple[pd.Series, str, str | None]:
    """A text column as numbers or as dates when every value is one: the values, what
    they became, and the dates' format; else the column as it is."""
    present = values.notna()
    numbers = parse_numbers(values, decimal, dates=False)
    if present.any() and numbers[present].notna().all():
        return numbers, "parsed from numbers written as text", None
    found = date_format(values, dayfirst)
    days = _days(values.astype(str).str.strip().where(present), found[0]) if found else None
    if days is None or days[present].isna().any():  # a 31-02-2021 is no date
        return values, "", None
    shown = found[0].replace("%d", "DD").replace("%m", "MM").replace("%Y", "YYYY")
    became = f"parsed from dates as days since 1970-01-01 ({shown})"
    return days, "; ".join(filter(None, [became, found[1]])), found[0]


def _decide(name: str, values: pd.Series, max_levels: int) -> tuple[str, str]:
    levels = values.nunique(dropna=True)
    if levels <= 1:
        shown = values.dropna().iloc[0] if levels else "nothing"
        return "dropped", f"constant (every row is {shown!r})"
    if looks_like_id(name, values):
        return "dropped", f"an id: all {levels} values differ"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric", ""
    if levels > max_levels:
        return "dropped", f"{levels} levels > data.max_levels={max_levels} (one-hot too wide)"
    return "categorical", f"{levels} levels"


def infer_task(target: pd.Series, name: str, task: str, source: str) -> tuple[str, str]:
    """The task, and one line saying which and why (refusing a target that cannot be
    what `task` asks)."""
    numbers = pd.to_numeric(target, errors="coerce")
    text = target[numbers.isna() & target.notna()]
    levels = target.dropna().nunique()
    if task == "regression":
        if len(text):
            raise ValueError(
                f"target={name!r} in {source} is not numeric (e.g. {text.iloc[0]!r}): "
                "regression needs numbers; data.task=auto reads text as classes"
            )
        return task, "data.task=regression"
    if task == "binary" and levels != 2:
        raise ValueError(
            f"target={name!r} in {source} has {levels} values; data.task=binary needs 2 "
            "(use data.task=multiclass or regression)"
        )
    if task in ("binary", "multiclass"):
        return task, f"data.task={task}"
    if len(text):
        return ("binary" if levels == 2 else "multiclass"), f"text values, {levels} classes"
    if levels == 2:
        return "binary", "two values"
    integers = bool((numbers.dropna() % 1 == 0).all())
    if integers and levels <= MAX_INTEGER_CLASSES and target.count() >= 5 * levels:
        return "multiclass", (
            f"{levels} integer values, read as classes (ambiguous: data.task=regression "
            "reads them as numbers)"
        )
    return "regression", f"numbers, {levels} distinct values"


def class_names(target: pd.Series) -> list[str]:
    """The classes of a target, in order: numbers by value, text alphabetically."""
    values = target.dropna().unique()
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    if numbers.notna().all():
        return [_number_text(v) for v in sorted(numbers)]
    return sorted(map(str, values))


def label_text(target: pd.Series) -> pd.Series:
    """A target's values as the class names `class_names` gives them."""
    numbers = pd.to_numeric(target, errors="coerce")
    if numbers[target.notna()].notna().all():
        return numbers.map(lambda v: np.nan if pd.isna(v) else _number_text(v))
    return target.map(lambda v: np.nan if pd.isna(v) else str(v))


def _number_text(value: Any) -> str:
    return str(int(value)) if float(value) % 1 == 0 else str(value)


def fingerprint(frame: pd.DataFrame) -> str:
    """A hash of the rows used, in their order (the split depends on it) and with their
    column names: a re-export with shuffled or changed rows gets another one."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
