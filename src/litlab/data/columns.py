"""What a table's columns and target become before encoding: the delimiter, the columns
asked for, numbers and dates written as text, columns that cannot carry signal, and the
task. Each decision is a row of the column report (`columns.csv` in the run folder)."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

DELIMITERS = ",;\t|"
MAX_INTEGER_CLASSES = 10  # integers with this many values at most (5 rows each) are classes
# A date, year first or last, one separator twice, maybe a time: 17.08.1984 10:30, 1984-08-17
DATE = re.compile(
    r"^(?:(\d{4})([-/.])(\d{1,2})\2(\d{1,2})|(\d{1,2})([-/.])(\d{1,2})\6(\d{4}))"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
# A year-last column with every day and month <= 12 is read as its separator's users mean it
DAYFIRST_BY_SEPARATOR = {"/": False, "-": True, ".": True}
ID_NAME = re.compile(r"(^|_|\b)(id|ids|uuid|key|record|patient_?no|row)$|id$", re.IGNORECASE)


def read_table(file: Path, sep: str | None) -> tuple[pd.DataFrame, str, str]:
    """A CSV file's table, delimiter (found if not given) and decimal mark (, after ;)."""
    if not file.is_file():
        raise ValueError(f"path={str(file)!r}: no such file")
    if sep is None:
        with open(file, encoding="utf-8", errors="replace") as handle:
            sample = handle.read(64_000)
        try:
            sep = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
        except csv.Error:
            sep = ","
    decimal = "," if sep == ";" else "."
    try:
        frame = pd.read_csv(file, sep=sep, decimal=decimal, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"path={str(file)!r}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"path={str(file)!r}: not a CSV table ({exc})") from None
    if frame.empty:
        raise ValueError(f"path={str(file)!r}: the table has a header but no rows")
    return frame, sep, decimal


def select_columns(
    frame: pd.DataFrame, source: str, target: str, features: list[str] | None, drop: list[str]
) -> pd.DataFrame:
    """The feature columns (less `drop`) and the target of `frame`, checked."""
    columns = f"in {source}; its columns are: {', '.join(map(str, frame.columns))}"
    if target not in frame.columns:
        raise ValueError(f"target={target!r}: no such column {columns}")
    features = [c for c in frame.columns if c != target] if features is None else list(features)
    for key, names in (("features", features), ("drop", drop)):
        if absent := ", ".join(repr(c) for c in names if c not in frame.columns):
            raise ValueError(f"{key}: no column {absent} {columns}")
    if target in features:
        raise ValueError(f"features: {target!r} is the target; leave it out of features")
    frame = frame[[*(c for c in features if c not in drop), target]]
    if empty := [c for c in frame.columns if frame[c].isna().all()]:
        raise ValueError(f"column {empty[0]!r} in {source} has no values: leave it out of features")
    return frame


def parse_numbers(values: pd.Series, decimal: str, date_format: str | None = None) -> pd.Series:
    """Each value as a number, NaN where it is none: thousands separators and the decimal
    mark read, or a date in `date_format` (strptime's) as days since 1970-01-01."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype(str).str.strip().where(values.notna())
    if date_format:
        return _days(text, date_format)
    thousands = "." if decimal == "," else ","
    t, d = re.escape(thousands), re.escape(decimal)
    pattern = rf"[+-]?(\d{{1,3}}({t}\d{{3}})+|\d+)({d}\d+)?([eE][+-]?\d+)?"
    plain = text.where(text.str.fullmatch(pattern, na=False)).str.replace(
        thousands, "", regex=False
    )
    numbers = pd.to_numeric(plain.str.replace(decimal, ".", regex=False), errors="coerce")
    return numbers.fillna(pd.to_numeric(text, errors="coerce"))


def date_format(values: pd.Series, dayfirst: bool | None) -> tuple[str, str] | None:
    """A date column's strptime format, and a note where it was a choice; None unless all
    are dates of one form. pandas guesses from the first value and takes `dayfirst` as a
    hint; here a field over 12 settles the order, else `dayfirst` or the separator."""
    text = values.dropna().astype(str).str.strip()
    fields = text.str.extract(DATE)
    if text.empty or fields.isna().all(axis=1).any():
        return None
    if fields[0].notna().all():  # year first
        sep = fields[1].iloc[0]
        return (f"%Y{sep}%m{sep}%d", "") if fields[1].nunique() == 1 else None
    if fields[4].isna().any() or fields[5].nunique() != 1:  # both forms, or two separators
        return None
    sep = fields[5].iloc[0]
    first, second = fields[4].astype(int), fields[6].astype(int)
    day_month, month_day = f"%d{sep}%m{sep}%Y", f"%m{sep}%d{sep}%Y"
    if (first > 12).any():
        return (day_month, "") if (second <= 12).all() else None
    if (second > 12).any():
        return month_day, ""
    chosen = DAYFIRST_BY_SEPARATOR[sep] if dayfirst is None else dayfirst
    how = "data.dayfirst" if dayfirst is not None else f"the separator {sep!r}"
    return (day_month if chosen else month_day), (
        f"ambiguous: every day and month is 12 or less; read as "
        f"{_shown(day_month if chosen else month_day)} (by {how}); data.dayfirst="
        f"{str(not chosen).lower()} reads them {'month' if chosen else 'day'}-first"
    )


def _shown(fmt: str) -> str:
    return fmt.replace("%d", "DD").replace("%m", "MM").replace("%Y", "YYYY")


def _days(text: pd.Series, fmt: str) -> pd.Series:
    """Days since 1970-01-01 of dates in `fmt`, a time or not (pandas takes one form)."""
    parts = text.str.replace("T", " ").str.partition(" ").fillna("")
    date, time = parts[0], parts[2]
    pad = np.select(
        [time == "", time.str.count(":") == 1, ~time.str.contains(".", regex=False)],
        ["00:00:00.0", ":00.0", ".0"],
        "",
    )
    dates = pd.to_datetime(date + " " + time + pad, format=fmt + " %H:%M:%S.%f", errors="coerce")
    return (dates - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)


def prepare_columns(
    frame: pd.DataFrame, decimal: str, keep: list[str], max_levels: int, dayfirst: bool | None
) -> tuple[pd.DataFrame, list[dict[str, str]], dict[str, str]]:
    """The usable feature columns, what each became and why, and each date column's format."""
    kept, report, formats = {}, [], {}
    for name in frame.columns:
        values, became, fmt = frame[name], "", None
        if not pd.api.types.is_numeric_dtype(values):
            values, became, fmt = _read_text(values, decimal, dayfirst)
        if fmt:
            formats[str(name)] = fmt
        kind, why = _decide(str(name), values, max_levels)
        if kind == "dropped" and name in keep:
            kind = "numeric" if pd.api.types.is_numeric_dtype(values) else "categorical"
            why = f"kept by data.keep (else dropped: {why})"
        report.append({"column": str(name), "became": kind, "why": _joined(became, why)})
        if kind != "dropped":
            kept[name] = values
    return pd.DataFrame(kept, index=frame.index), report, formats


def _joined(*notes: str) -> str:
    return "; ".join(filter(None, notes))


def _read_text(
    values: pd.Series, decimal: str, dayfirst: bool | None
) -> tuple[pd.Series, str, str | None]:
    """A text column as numbers or dates if every value is one: values, why, date format."""
    present = values.notna()
    numbers = parse_numbers(values, decimal)
    if present.any() and numbers[present].notna().all():
        return numbers, "parsed from numbers written as text", None
    found = date_format(values, dayfirst)
    days = parse_numbers(values, decimal, found[0]) if found else None
    if days is None or days[present].isna().any():  # a 31-02-2021 is no date
        return values, "", None
    became = f"parsed from dates as days since 1970-01-01 ({_shown(found[0])})"
    return days, _joined(became, found[1]), found[0]


def _decide(name: str, values: pd.Series, max_levels: int) -> tuple[str, str]:
    """What a column becomes, and why: constant, id-like and too wide columns are dropped."""
    present, levels = values.dropna(), values.nunique()
    if levels <= 1:
        return "dropped", f"constant (every row is {present.iloc[0] if levels else 'nothing'!r})"
    numeric = pd.api.types.is_numeric_dtype(values)
    integers = numeric and bool((present % 1 == 0).all())
    rows = integers and present.max() - present.min() + 1 == len(present) >= 20
    if levels == len(present) and (not numeric or (integers and (ID_NAME.search(name) or rows))):
        return "dropped", f"an id: all {levels} values differ"
    if numeric:
        return "numeric", ""
    if levels > max_levels:
        return "dropped", f"{levels} levels > data.max_levels={max_levels} (one-hot too wide)"
    return "categorical", f"{levels} levels"


def infer_task(target: pd.Series, name: str, task: str, source: str) -> tuple[str, str]:
    """The task and why; a target that cannot be what `task` asks is refused."""
    numbers = pd.to_numeric(target, errors="coerce")
    text = target[numbers.isna() & target.notna()]
    levels = target.dropna().nunique()
    if task == "regression" and len(text):
        raise ValueError(
            f"target={name!r} in {source} is not numeric (e.g. {text.iloc[0]!r}): "
            "regression needs numbers; data.task=auto reads text as classes"
        )
    if task == "binary" and levels != 2:
        raise ValueError(
            f"target={name!r} in {source} has {levels} values; data.task=binary needs 2 "
            "(use data.task=multiclass or regression)"
        )
    if task != "auto":
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


def label_text(target: pd.Series) -> pd.Series:
    """A target's values as class names (whole numbers without their .0), missing kept."""
    numbers = pd.to_numeric(target, errors="coerce")
    if numbers[target.notna()].notna().all():
        return numbers.map(lambda v: v if pd.isna(v) else str(int(v)) if v % 1 == 0 else str(v))
    return target.map(lambda v: v if pd.isna(v) else str(v))


def class_names(target: pd.Series) -> list[str]:
    """The classes of a target, in order: numbers by value, text alphabetically."""
    names = sorted(label_text(target).dropna().unique())
    numeric = pd.to_numeric(pd.Series(names, dtype=object), errors="coerce").notna().all()
    return sorted(names, key=float) if numeric else names


def fingerprint(frame: pd.DataFrame) -> str:
    """A hash of the rows in their order (the split depends on it) and of the columns."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
