"""Files that may come from someone else (a checkpoint, a run folder's config.yaml) are
read as plain data: bounded in size, never resolved, and building only allowed targets.
litlab saves a config resolved, so a stored `${` was not written by litlab: resolving it
would run a resolver the file chose (`oc.env`), and it is refused, naming the key."""

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
# What a stored config may cost before anything is built: litlab's own are about 3 KB,
# 60 values and 4 levels deep.
MAX_BYTES = 1_000_000
MAX_VALUES = 10_000
MAX_DEPTH = 32
PLAIN = (str, int, float, bool, type(None), list, dict)


def read_config_file(path: Path) -> dict[str, Any]:
    """The config in YAML file `path` as plain data (`plain_config`); one line naming the
    file for anything else: too big, not YAML, a YAML tag, not a mapping."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError([f"{path}: {size} bytes; a stored config is at most {MAX_BYTES}"])
        text = path.read_text(encoding="utf-8")
        # First as PyYAML reads it, aliases shared (a "billion laughs" file stays small),
        # to bound it; then as OmegaConf's loader does, which reads 1e-3 as a number.
        plain_config(yaml.safe_load(text), str(path))
        config = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except yaml.YAMLError as exc:  # a syntax error, a python tag
        reason = " ".join(str(exc).split())
        raise ConfigError([f"{path}: not a YAML config ({reason})"]) from None
    except (OSError, UnicodeDecodeError, OmegaConfBaseException) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError([f"{path}: cannot be read ({reason})"]) from None
    return plain_config(config, str(path))


def plain_config(config: Any, source: str) -> dict[str, Any]:
    """`config` if it is a mapping of plain values (text, numbers, booleans, null, lists,
    mappings with text keys) within MAX_VALUES values, MAX_BYTES of text and MAX_DEPTH
    levels, and no text holds an interpolation; else one ConfigError naming the first
    key that is not."""
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
    """(dotted key, value, depth) of every value under `node`, parents before children;
    a key that is not plain text is refused, naming `source`."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if (isinstance(node, dict) and not isinstance(key, str)) or "${" in str(key):
            raise ConfigError([f"{path} ({source}): a key of a stored config is plain text"])
        yield path, value, depth
        if isinstance(value, dict | list) and depth <= MAX_DEPTH:
            yield from _walk(value, source, path, depth + 1)


# --------------------------------------------------------------------------- targets


def target_errors(composed: SourcedConfig) -> list[str]:
    """Every `_target_` that a file of `composed.untrusted` set and that `allowed_target`
    refuses; checked as text, so nothing it names is imported."""
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
    """A target named in a config file (litlab's configs/ or the user's ./configs/), or a
    public class defined in litlab's own code (read from its source, not imported).
    Functions are left out: litlab.cli.main or litlab.signatures.locate would run or
    import whatever their arguments name; so are names a litlab module only imports."""
    if not isinstance(target, str):
        return False
    return target in config_targets() or target in litlab_classes()


def config_targets() -> frozenset[str]:
    """Every `_target_` in the config files: litlab's configs/ and the user's own
    ./configs/ (a model added there as an option is the user's choice, so allowed)."""
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
    """`litlab.<module>.<Class>` for every public class defined at the top of a module of
    the package (not `__main__`, which runs the command line)."""
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
    """(dotted key, value) of every key `name` in `node`, at any depth, lists included."""
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
