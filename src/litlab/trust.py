"""Files that may come from someone else (a checkpoint, a run's config.yaml) are read as
plain data: bounded, never resolved (litlab saves configs resolved, so a `${` would run a
resolver the file chose), and building only allowed targets."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from litlab.config import SourcedConfig, config_dirs
from litlab.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
# What a stored config may cost: litlab's own are about 3 KB, 60 values, 4 levels deep.
MAX_BYTES = 1_000_000
MAX_VALUES = 10_000
MAX_DEPTH = 32
PLAIN = (str, int, float, bool, type(None), list, dict)


def read_config_file(path: Path) -> dict[str, Any]:
    """The config in YAML file `path` as plain data; else one line naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError([f"{path}: {size} bytes; a stored config is at most {MAX_BYTES}"])
        text = path.read_text(encoding="utf-8")
        # Bounded as PyYAML reads it (aliases shared: a "billion laughs" stays small), then
        # read as OmegaConf does (1e-3 a number).
        plain_config(yaml.safe_load(text), str(path))
        config = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except (yaml.YAMLError, OSError, UnicodeDecodeError, OmegaConfBaseException) as exc:
        what = "not a YAML config" if isinstance(exc, yaml.YAMLError) else "cannot be read"
        raise ConfigError([f"{path}: {what} ({' '.join(str(exc).split())})"]) from None
    return plain_config(config, str(path))


def plain_config(config: Any, source: str) -> dict[str, Any]:
    """`config` if it is a mapping of plain values within the MAX_* bounds, with no
    interpolation; else a ConfigError naming the first key that is not."""
    if not isinstance(config, dict):
        kind = type(config).__name__
        raise ConfigError([f"{source}: a stored config is a mapping of keys, not a {kind}"])
    size = 0
    for values, (key, value, depth) in enumerate(_walk(config, source), start=1):
        where = f"{key} ({source})"
        size += len(key) + (len(value) if isinstance(value, str) else 8)
        if values > MAX_VALUES or size > MAX_BYTES:
            raise ConfigError(
                [f"{source}: over {MAX_VALUES} values or {MAX_BYTES} bytes; not a litlab config"]
            )
        if depth > MAX_DEPTH:
            raise ConfigError([f"{where}: nested deeper than {MAX_DEPTH} levels"])
        if not isinstance(value, PLAIN):
            raise ConfigError([f"{where}: a {type(value).__name__}; a stored config holds data"])
        if isinstance(value, str) and "${" in value:
            raise ConfigError(
                [
                    f"{where}: {value[:80]!r} is an interpolation; a stored config is saved "
                    "resolved, so this file was not written by litlab"
                ]
            )
    return config


def _walk(
    node: Any, source: str, prefix: str = "", depth: int = 1
) -> Iterator[tuple[str, Any, int]]:
    """(dotted key, value, depth) of every value under `node`, parents first."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if (isinstance(node, dict) and not isinstance(key, str)) or "${" in str(key):
            raise ConfigError([f"{path} ({source}): a key of a stored config is plain text"])
        yield path, value, depth
        if isinstance(value, dict | list) and depth <= MAX_DEPTH:
            yield from _walk(value, source, path, depth + 1)


def target_errors(composed: SourcedConfig) -> list[str]:
    """Every `_target_` an untrusted file set that `allowed_target` refuses (as text:
    nothing is imported)."""
    errors = []
    for key, target in keys_named(composed.cfg, "_target_"):
        where = composed.source(key)
        if where in composed.untrusted and not allowed_target(target):
            errors.append(
                f"{key}={target} ({where}): a stored config may build only litlab's classes "
                "and the targets in configs/; pass --trust if you trust this file"
            )
    return errors


def allowed_target(target: Any) -> bool:
    """A target named in configs/ or ./configs/, or a public class defined in litlab's
    source (not a function: litlab.cli.main would run whatever its arguments say)."""
    if not isinstance(target, str):
        return False
    return target in config_targets() or target in litlab_classes()


def config_targets() -> frozenset[str]:
    """Every `_target_` in litlab's configs/ and the user's ./configs/."""
    return frozenset().union(*(_targets_under(folder) for folder in config_dirs()))


@functools.cache
def _targets_under(folder: Path) -> frozenset[str]:
    found: set[str] = set()
    for path in folder.rglob("*.yaml"):
        node = OmegaConf.to_container(OmegaConf.load(path))
        found |= {str(target) for _, target in keys_named(node, "_target_")}
    return frozenset(found)


@functools.cache
def litlab_classes() -> frozenset[str]:
    """`litlab.<module>.<Class>` of every public class defined in the package's source."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if any(part.startswith("_") for part in parts):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = ".".join(parts)
        found |= {
            f"{module}.{node.name}"
            for node in tree.body
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
        }
    return frozenset(found)


def keys_named(node: Any, name: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every key `name` in `node`, at any depth."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node)
    items: Any = node.items() if isinstance(node, dict) else ()
    items = enumerate(node) if isinstance(node, list) else items
    for key, child in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if key == name:
            yield path, child
        else:
            yield from keys_named(child, name, path)
