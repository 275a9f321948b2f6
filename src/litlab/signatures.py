"""The keyword parameters of each class a config builds, and the types they take, as
plain data for the schema check. Reading them imports torch and Lightning (about 3 s), so
they are cached beside the bytecode while their package is unchanged (litlab by its files'
times, the libraries by version); a user's own classes are read every time."""

from __future__ import annotations

import collections.abc
import functools
import importlib
import importlib.metadata
import inspect
import json
import os
import sys
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from litlab.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
CACHE = PACKAGE / "__pycache__" / f"signatures.{sys.implementation.cache_tag}.json"
CACHED_PACKAGES = ("litlab", "lightning", "torch", "torchmetrics")

# A type as plain data: "any", "null", "bool", "int", "float", "str", "list", "dict",
# "object <class name>", {"union": [types]}, {"literal": [values]} or
# {"at_least": [least, type]}.
Spec = str | dict[str, list[Any]]


@dataclass(frozen=True)
class AtLeast:
    """`Annotated[int, AtLeast(1)]`: the least value a parameter takes."""

    least: int | float


Positive = Annotated[int, AtLeast(1)]  # an interval or a count of steps or epochs


@dataclass(frozen=True)
class Signature:
    params: dict[str, Spec]  # keyword parameter -> the type it accepts
    takes_any: bool  # it has **kwargs: any other key is passed on


def importable() -> None:
    """Modules in the working directory are importable (./mymodels.py), after the installed
    packages, so they never shadow them."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def locate(dotted: str) -> Any:
    """Import `package.module.Name` and return `Name`."""
    module_name, _, attr = str(dotted).rpartition(".")
    importable()
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError([f"cannot import {dotted!r}"]) from None


def signature(dotted: str) -> Signature:
    """The signature of the class (or function) `dotted`, from the cache where it can."""
    stamp = _stamp(dotted.partition(".")[0])
    cache = _cache()
    entry = cache.get(dotted)
    if stamp is not None and entry is not None and entry["stamp"] == stamp:
        return Signature(entry["params"], entry["takes_any"])
    found = _read(locate(dotted))
    if stamp is not None:
        cache[dotted] = {"stamp": stamp, **asdict(found)}
        _save(cache)
    return found


def spec(annotation: Any) -> Spec:
    """A type hint as plain data; hints it cannot check become "any"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:  # a class itself since Python 3.11
        return "any"
    if origin in (typing.Union, types.UnionType):
        return {"union": [spec(arg) for arg in args]}
    if origin is typing.Literal:
        return {"literal": list(args)}
    if origin is typing.Annotated:
        bounds = [m.least for m in annotation.__metadata__ if isinstance(m, AtLeast)]
        inner = spec(args[0])
        return {"at_least": [bounds[0], inner]} if bounds else inner
    if annotation is type(None):
        return "null"
    if annotation in (bool, int, float, str):
        return annotation.__name__
    if origin in (list, tuple, collections.abc.Sequence):
        return "list"
    if origin is dict or annotation is dict:
        return "dict"
    if inspect.isclass(annotation) and annotation.__module__ != "builtins":
        return f"object {annotation.__name__}"
    return "any"


def accepts(value: Any, expected: Spec) -> bool:
    """Whether `value` (plain Python, from YAML) fits the type `expected`."""
    if isinstance(expected, dict):
        if "union" in expected:
            return any(accepts(value, option) for option in expected["union"])
        if "at_least" in expected:
            least, inner = expected["at_least"]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            return accepts(value, inner) and (not number or value >= least)
        return value in expected["literal"]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "null": value is None,
        "bool": isinstance(value, bool),
        "int": number and isinstance(value, int),
        "float": number,
        "str": isinstance(value, str),
        "list": isinstance(value, list | tuple),
        "dict": isinstance(value, dict),
    }.get(
        expected,
        # "any", or a library object: YAML cannot write one, so only plain values are wrong
        expected == "any" or not isinstance(value, bool | int | float | str | list),
    )


def type_name(expected: Spec) -> str:
    if not isinstance(expected, dict):
        return expected.removeprefix("object ")
    if "union" in expected:
        return " | ".join(type_name(option) for option in expected["union"])
    if "literal" in expected:
        return " | ".join(repr(value) for value in expected["literal"])
    least, inner = expected["at_least"]
    if isinstance(inner, dict) and "union" in inner:  # int | null: int >= 1 | null
        bounded = [{"at_least": [least, o]} if o in ("int", "float") else o for o in inner["union"]]
        return type_name({"union": bounded})
    return f"{type_name(inner)} >= {least}"


def _read(target: Any) -> Signature:
    try:
        found = inspect.signature(target).parameters
    except ValueError:  # a class written in C (datetime.timedelta): its own call checks
        return Signature({}, takes_any=True)
    params = {
        name: p for name, p in found.items() if p.kind is not p.VAR_POSITIONAL and name != "self"
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    hints = _hints(target)
    return Signature({name: spec(hints.get(name, Any)) for name in params}, takes_any)


def _hints(target: Any) -> dict[str, Any]:
    func = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(inspect.unwrap(func), include_extras=True)
    except Exception:  # unresolvable forward references in a library: check nothing
        return {}


@functools.cache
def _stamp(package: str) -> str | None:
    """What changes when `package` does; None for a package that is not cached."""
    if package not in CACHED_PACKAGES:
        return None
    if package == "litlab":  # an editable install: its files change, its version does not
        return str(max(p.stat().st_mtime_ns for p in PACKAGE.rglob("*.py")))
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _cache() -> dict[str, Any]:
    try:
        return json.loads(CACHE.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: read the classes again
        return {}


def _save(cache: dict[str, Any]) -> None:
    """Write the cache through a temporary file (runs of a sweep may write at once); an
    unwritable folder costs only the next run's imports."""
    partial = CACHE.with_name(f"{CACHE.name}.{os.getpid()}")
    try:
        CACHE.parent.mkdir(exist_ok=True)
        partial.write_text(json.dumps(cache))
        os.replace(partial, CACHE)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if not isinstance(exc, OSError | TypeError):  # TypeError: a Literal JSON cannot hold
            raise
