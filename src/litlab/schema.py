"""The schema check: every key, type and value of a composed config against the signature
of the class each node builds (cached in signatures.py), before torch is imported."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import PurePath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from litlab.config import GLOBAL_GROUPS, SEARCH_GROUP, RunConfig, SourcedConfig, groups
from litlab.errors import ConfigError
from litlab.signatures import Spec, accepts, signature, spec, type_name
from litlab.trust import keys_named, target_errors

# A scheduler's `lightning` node: the rest of Lightning's lr_scheduler dict (interval, ...).
SCHEDULER_OPTIONS = "lightning"
SCHEDULER_OPTIONS_CLASS = "lightning.pytorch.utilities.types.LRSchedulerConfig"
# No config of the groups that write may move a run's files out of its folder.
WRITERS = ("trainer", "logger", "callbacks")
WRITE_PATHS = ("dirpath", "save_dir", "default_root_dir", "log_dir", "sub_dir", "run_dir", "dir")
LIGHTNING_COUNTERS = ("epoch", "step")  # what Lightning adds to the metrics one may monitor
REQUIRED = ("data", "model", "module", "optimizer", "trainer")  # the others may be null
NETWORK_ARGUMENTS = ("in_features", "out_features")  # the data's sizes, given to every network
# Library parameters that count steps or epochs, and the least that works (an interval of 0
# divides by zero deep in the run); litlab's own say it with Annotated[int, AtLeast(1)].
AT_LEAST = {
    "lightning.Trainer": {
        "max_epochs": 1,
        "log_every_n_steps": 1,
        "check_val_every_n_epoch": 1,
        "accumulate_grad_batches": 1,
    },
    "torch.optim.lr_scheduler.StepLR": {"step_size": 1},
}


def key_errors(composed: SourcedConfig) -> list[str]:
    """Unknown keys, wrong types and values out of range, read from the config alone."""
    errors = target_errors(composed)
    if errors:  # before signature() imports anything a stored file named
        return errors
    cfg = composed.cfg
    expected = {f.name for f in dataclasses.fields(RunConfig)} | set(groups()) - set(GLOBAL_GROUPS)
    for key in cfg:
        if key == SEARCH_GROUP:
            errors.append(f"search ({composed.source(key)}): a search space is for `litlab search`")
        elif key not in expected:
            errors.append(_unknown(composed, str(key), expected))
    errors += [
        f"{group} ({composed.source(group)}): missing; every run needs one"
        for group in REQUIRED
        if cfg.get(group) is None
    ]
    for name, annotation in typing.get_type_hints(RunConfig).items():
        if name in cfg:
            errors += _check_value(composed, name, cfg[name], spec(annotation))
    nodes, shape_errors = target_nodes(composed)
    errors += shape_errors
    for path, node in nodes.items():
        errors += _check_node(composed, path, node)
    if "model" in nodes:
        errors += _network_errors(composed, nodes["model"]._target_)
    return errors + _name_errors(composed) + _path_errors(composed)


def _network_errors(composed: SourcedConfig, target: str) -> list[str]:
    """The recipe builds the network with the data's sizes: it must take them."""
    try:
        found = signature(target)
    except ConfigError:
        return []  # reported by _check_node
    missing = [name for name in NETWORK_ARGUMENTS if name not in found.params]
    if not missing or found.takes_any:
        return []
    return [
        f"model._target_={target} ({composed.source('model._target_')}): a network must take "
        f"the keyword arguments in_features and out_features (the data's sizes); it lacks "
        f"{', '.join(missing)}"
    ]


def monitor_errors(composed: SourcedConfig, logged: set[str]) -> list[str]:
    """Every `monitor` naming a metric the module never logs (Lightning would stop at the
    first validation)."""
    logged = logged | set(LIGHTNING_COUNTERS)
    return [
        f"{key}={value} ({composed.source(key)}): no such metric; the module logs "
        f"{', '.join(sorted(logged))}"
        for key, value in keys_named(composed.cfg, "monitor")
        if isinstance(value, str) and value not in logged
    ]


def target_nodes(composed: SourcedConfig) -> tuple[dict[str, DictConfig], list[str]]:
    """Every node that builds an object, by dotted path: a group's node with a `_target_`,
    or a mapping of such nodes (callbacks, several loggers); and the errors of the others."""
    cfg, nodes, errors = composed.cfg, {}, []
    for group in groups():
        node = cfg.get(group)
        if group in (*GLOBAL_GROUPS, SEARCH_GROUP) or node is None:
            continue
        children = {group: node}
        if isinstance(node, DictConfig) and "_target_" not in node:
            children = {f"{group}.{name}": child for name, child in node.items() if child}
        for path, child in children.items():
            if isinstance(child, DictConfig) and isinstance(child.get("_target_"), str):
                nodes[path] = child
            else:
                errors.append(_not_a_node(composed, group, path))
    return nodes, errors


def _not_a_node(composed: SourcedConfig, group: str, path: str) -> str:
    """With several options picked (logger=[tensorboard,mlflow]), most likely a key meant
    for one of them."""
    where, picked = composed.source(path), composed.choices.get(group)
    if isinstance(picked, list) and path.count(".") == 1:
        key = path.partition(".")[2]
        keys = " or ".join(f"{group}.{option}.{key}" for option in picked)
        return f"{path} ({where}): {group}=[{','.join(picked)}] picks several; name the one: {keys}"
    return f"{path} ({where}): needs a _target_ naming the class to build"


def _check_node(
    composed: SourcedConfig, path: str, node: DictConfig, target: str | None = None
) -> list[str]:
    target = target or node._target_
    try:
        found = signature(target)
    except ConfigError as exc:
        return [f"{path}._target_ ({composed.source(path + '._target_')}): {exc}"]
    errors = []
    for key, value in node.items():
        key, child = str(key), f"{path}.{key}"
        if key == "_partial_":
            errors += _check_value(composed, child, value, "bool")
        elif key == SCHEDULER_OPTIONS and path == "scheduler" and isinstance(value, DictConfig):
            errors += _check_node(composed, child, value, SCHEDULER_OPTIONS_CLASS)
        elif key == "_target_":
            continue
        elif isinstance(value, DictConfig) and isinstance(value.get("_target_"), str):
            errors += _check_node(composed, child, value)  # built first
        elif key in found.params:
            least = AT_LEAST.get(target, {}).get(key)
            expected = (
                found.params[key] if least is None else {"at_least": [least, found.params[key]]}
            )
            errors += _check_value(composed, child, value, expected)
        elif not found.takes_any:
            errors.append(_unknown(composed, child, found.params, target))
    return errors


def _name_errors(composed: SourcedConfig) -> list[str]:
    """<runs_dir>/<name> must be a folder under runs_dir (not itself, not outside)."""
    name = composed.cfg.get("name")
    path = PurePath(name) if isinstance(name, str) else None
    if path is None or (
        not path.is_absolute() and ".." not in path.parts and name not in ("", ".")
    ):
        return []
    return [
        f"name={name} ({composed.source('name')}): must stay inside runs_dir "
        "(a relative path without '..')"
    ]


def _path_errors(composed: SourcedConfig) -> list[str]:
    """Settings that would make a run write outside its folder; a checkpoint's file name is
    a name, not a path."""
    writers = {group: composed.cfg.get(group) for group in WRITERS}
    errors = [
        f"{path}={value} ({composed.source(path)}): a run writes only inside its run folder; "
        "choose where runs go with runs_dir= and name="
        for key in WRITE_PATHS
        for path, value in keys_named(writers, key)
        if value is not None
    ]
    for path, value in keys_named(writers, "filename"):
        if isinstance(value, str) and (PurePath(value).name != value or value in ("", ".", "..")):
            errors.append(
                f"{path}={value} ({composed.source(path)}): a file name inside the run's "
                "checkpoints/ folder, without '/' or '..'"
            )
    return errors


def _check_value(composed: SourcedConfig, key: str, value: Any, expected: Spec) -> list[str]:
    plain = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if accepts(plain, expected):
        return []
    got = "" if _typed(plain, expected) else f", got {type(plain).__name__}"  # out of bounds
    return [f"{key}={plain!r} ({composed.source(key)}): expected {type_name(expected)}{got}"]


def _typed(value: Any, expected: Spec) -> bool:
    """Whether `value` has a type `expected` takes, its bounds aside."""
    if isinstance(expected, dict) and "at_least" in expected:
        return accepts(value, expected["at_least"][1])
    if isinstance(expected, dict) and "union" in expected:
        return any(_typed(value, option) for option in expected["union"])
    return accepts(value, expected)


def _unknown(composed: SourcedConfig, key: str, allowed: Any, target: str | None = None) -> str:
    parent, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, [str(a) for a in allowed], n=1)
    hint = f"; did you mean {(parent + '.' if parent else '') + close[0]}?" if close else ""
    owner = f" of {target}" if target else ""
    return f"{key} ({composed.source(key)}): unknown key{owner}{hint}"
