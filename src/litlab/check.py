"""The pre-flight check: every error of a composed config at once, before any folder is
made, and once per command.

First what needs no import of torch: each top-level key, and each key and type of every
node that builds an object, against the signature of its class (from the cache in
signatures.py), and the value rules below. Then, with torch, what only building tells:
the optimiser and the schedule on a stand-in parameter (a milestone list that is not
sorted, a warm-up longer than the run), and whether the machine has the chosen device.
Errors a data set or a network raise about their own arguments come when the recipe
builds them, before any folder, each naming its node (builders.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import typing
from pathlib import PurePath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from litlab.config import GLOBAL_GROUPS, SEARCH_GROUP, RunConfig, SourcedConfig, groups
from litlab.errors import ConfigError, MissingPackage
from litlab.signatures import Spec, accepts, signature, spec, type_name
from litlab.trust import keys_named
from litlab.trust import target_errors as stored_target_errors

# A scheduler node's `lightning` sub-node is the rest of Lightning's lr_scheduler dict
# (interval, frequency, monitor): when Lightning steps the scheduler, not its arguments.
SCHEDULER_OPTIONS = "lightning"
SCHEDULER_OPTIONS_CLASS = "lightning.pytorch.utilities.types.LRSchedulerConfig"
# Where the recipe puts a run's files (inside its folder): no config of the groups that
# write may move them.
WRITERS = ("trainer", "logger", "callbacks")
WRITE_PATHS = ("dirpath", "save_dir", "default_root_dir", "log_dir", "sub_dir", "run_dir", "dir")
# What Lightning adds to the metrics a ModelCheckpoint may monitor.
LIGHTNING_COUNTERS = ("epoch", "step")
DIRECTIVES = ("_target_", "_partial_")  # keys of a node that instantiate reads itself
# What the recipe builds in every run; the other groups may be null (switched off).
REQUIRED = ("data", "model", "module", "optimizer", "trainer")
# What the recipe gives every network when it builds it: the data's sizes.
NETWORK_ARGUMENTS = ("in_features", "out_features")
# Library parameters that count steps or epochs, and the least value that works: an
# interval of 0 divides by zero deep inside the run, max_epochs=-1 trains until killed.
# (litlab's own classes say it in their signatures: Annotated[int, AtLeast(1)].)
AT_LEAST = {
    "lightning.Trainer": {
        "max_epochs": 1,
        "log_every_n_steps": 1,
        "check_val_every_n_epoch": 1,
        "accumulate_grad_batches": 1,
    },
    "torch.optim.lr_scheduler.StepLR": {"step_size": 1},
}
# Classes whose package is optional: the package to import, and the dependency group of
# pyproject.toml that installs it. Lightning's loggers import without theirs and fail
# only when built, after the run folder is made; timm imports torchvision, which fails
# to import when it was built for another torch.
OPTIONAL_PACKAGES = {
    "MLFlowLogger": ("mlflow", "mlflow"),
    "WandbLogger": ("wandb", "wandb"),
    "Timm": ("timm", "vision"),
}


def check(composed: SourcedConfig, build: bool = True) -> SourcedConfig:
    """Raise one ConfigError listing every problem of `composed`; with `build`, also
    build the optimiser and schedule and look for the device (this imports torch)."""
    if composed.checked:
        return composed
    errors = key_errors(composed)
    if errors:
        raise ConfigError(errors)
    if build:
        refuse_missing_packages(composed)
        errors = built_errors(composed)
    if errors:
        raise ConfigError(errors)
    composed.notes = list(dict.fromkeys([*composed.notes, *no_op_notes(composed.cfg)]))
    composed.checked = build
    return composed


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
    for group in REQUIRED:
        if cfg.get(group) is None:
            errors.append(f"{group} ({composed.source(group)}): missing; every run needs one")
    for name, annotation in typing.get_type_hints(RunConfig).items():
        if name in cfg:
            errors += _check_value(composed, name, cfg[name], spec(annotation))
    nodes, shape_errors = target_nodes(composed)
    errors += shape_errors
    for path, node in nodes.items():
        errors += _check_node(composed, path, node)
    if "model" in nodes:
        errors += _network_errors(composed, nodes["model"]._target_)
    return errors + _value_errors(composed)


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


def target_errors(composed: SourcedConfig) -> list[str]:
    """The `_target_`s a stored file set that it may not build (trust.target_errors)."""
    return stored_target_errors(composed.cfg, composed.source, composed.untrusted)


def monitor_errors(composed: SourcedConfig, logged: set[str]) -> list[str]:
    """Every `monitor` (a callback's, the schedule's) naming a metric that the module,
    which logs `logged`, never logs: Lightning would stop at the first validation.
    Lightning's own counters count too (callbacks.last monitors the step)."""
    logged = logged | set(LIGHTNING_COUNTERS)
    errors = []
    for key, value in keys_named(composed.cfg, "monitor"):
        if isinstance(value, str) and value not in logged:
            errors.append(
                f"{key}={value} ({composed.source(key)}): no such metric; the module logs "
                f"{', '.join(sorted(logged))}"
            )
    return errors


def target_nodes(composed: SourcedConfig) -> tuple[dict[str, DictConfig], list[str]]:
    """Every node that builds an object, by dotted path, found by its shape: a group's
    node with a `_target_`, or a mapping of such nodes (callbacks). A group added to
    configs/ is checked the same way, with no list to keep here."""
    cfg, nodes, errors = composed.cfg, {}, []
    for group in groups():
        node = cfg.get(group)
        if group in (*GLOBAL_GROUPS, SEARCH_GROUP) or node is None:
            continue
        if isinstance(node, DictConfig) and "_target_" not in node:
            children = {f"{group}.{name}": child for name, child in node.items() if child}
        else:
            children = {group: node}
        for path, child in children.items():
            if isinstance(child, DictConfig) and isinstance(child.get("_target_"), str):
                nodes[path] = child
            else:
                errors.append(_not_a_node(composed, group, path))
    return nodes, errors


def _not_a_node(composed: SourcedConfig, group: str, path: str) -> str:
    """The error for a key of a group that builds nothing; with several options picked
    (logger=[tensorboard,mlflow]), most likely a key meant for one of them."""
    where, picked = composed.source(path), composed.choices.get(group)
    if isinstance(picked, list) and path.count(".") == 1:
        key = path.partition(".")[2]
        keys = " or ".join(f"{group}.{option}.{key}" for option in picked)
        return f"{path} ({where}): {group}=[{','.join(picked)}] picks several; name the one: {keys}"
    return f"{path} ({where}): needs a _target_ naming the class to build"


def refuse_missing_packages(composed: SourcedConfig) -> None:
    """A node whose class needs an optional package that is not installed, or is but
    fails to import: one line saying why, and the command that installs it."""
    for path, node in target_nodes(composed)[0].items():
        needed = OPTIONAL_PACKAGES.get(str(node._target_).rpartition(".")[2])
        if not needed:
            continue
        package, group = needed
        install = f'pip install -e ".[{group}]"'
        if importlib.util.find_spec(package) is None:
            why = "not installed here"
        else:
            why = _import_failure(package)
            if not why:
                continue
            if "torchvision" in why:  # the usual cause: a torchvision built for another torch
                install += f" with a torchvision built for this torch ({_torch_build()})"
        raise MissingPackage(
            [f"{path} ({composed.source(path)}) needs the {package} package, {why}: {install}"]
        )


def _import_failure(package: str) -> str:
    """'' when `package` imports; else what its import raised, in one line."""
    try:
        importlib.import_module(package)
    # an installed package can fail at import with anything: a missing or mismatched
    # dependency (torchvision's "operator torchvision::nms does not exist" is a RuntimeError)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"installed here but failing to import ({type(exc).__name__}: {first})"
    return ""


def _torch_build() -> str:
    import torch

    cuda = torch.version.cuda
    return f"torch {torch.__version__}, " + (f"CUDA {cuda}" if cuda else "CPU only")


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
        key = str(key)
        if key == "_partial_":
            errors += _check_value(composed, f"{path}.{key}", value, "bool")
        elif key == SCHEDULER_OPTIONS and path == "scheduler" and isinstance(value, DictConfig):
            errors += _check_node(composed, f"{path}.{key}", value, SCHEDULER_OPTIONS_CLASS)
        elif key in DIRECTIVES:
            continue
        elif isinstance(value, DictConfig) and isinstance(value.get("_target_"), str):
            errors += _check_node(composed, f"{path}.{key}", value)  # built first
        elif key not in found.params:
            if not found.takes_any:
                errors.append(_unknown(composed, f"{path}.{key}", found.params, target))
        else:
            expected = found.params[key]
            least = AT_LEAST.get(target, {}).get(key)
            expected = expected if least is None else {"at_least": [least, expected]}
            errors += _check_value(composed, f"{path}.{key}", value, expected)
    return errors


def no_op_notes(cfg: DictConfig) -> list[str]:
    """Settings that make a feature do nothing in this run's length: said once at start."""
    epochs = cfg.trainer.get("max_epochs")
    if not isinstance(epochs, int) or epochs < 1:
        return []
    val = cfg.trainer.get("check_val_every_n_epoch")
    notes = []
    if isinstance(val, int) and val > epochs:
        notes.append(
            f"trainer.check_val_every_n_epoch={val} > trainer.max_epochs={epochs}: nothing is "
            "validated, so no best.ckpt, no val/loss, no early stopping"
        )
    elif isinstance(val, int) and epochs % val:
        notes.append(
            f"trainer.check_val_every_n_epoch={val}: the last {epochs % val} epochs are "
            "not validated"
        )
    notes += _schedule_notes(cfg.get("scheduler"), epochs)
    for name, node in (cfg.get("callbacks") or {}).items():
        every = node.get("every_n_epochs") if isinstance(node, DictConfig) else None
        if isinstance(every, int) and every > epochs:
            notes.append(
                f"callbacks.{name}.every_n_epochs={every} > trainer.max_epochs={epochs}: never runs"
            )
    return notes


def _schedule_notes(node: DictConfig | None, epochs: int) -> list[str]:
    """A schedule stepped by epoch whose first change comes after the run's end."""
    options = node.get(SCHEDULER_OPTIONS) if isinstance(node, DictConfig) else None
    if node is None or (options or {}).get("interval", "epoch") != "epoch":
        return []
    end = f"after the run's {epochs} epochs: the rate never changes"
    step, milestones = node.get("step_size"), node.get("milestones")
    if isinstance(step, int) and step >= epochs:
        return [f"scheduler.step_size={step}: the first decay comes {end}"]
    if milestones and min(milestones) >= epochs:
        return [f"scheduler.milestones={list(milestones)}: every milestone comes {end}"]
    patience, every = node.get("patience"), (options or {}).get("frequency", 1)
    if isinstance(patience, int) and isinstance(every, int) and epochs // every <= patience:
        rounds = epochs // every
        return [
            f"scheduler.patience={patience}: the run checks the metric only {rounds} times; "
            "the rate never changes"
        ]
    return []


def _value_errors(composed: SourcedConfig) -> list[str]:
    """Values of the right type that no class would take."""
    errors = []
    lr = OmegaConf.select(composed.cfg, "optimizer.lr")
    if isinstance(lr, int | float) and not isinstance(lr, bool) and lr < 0:
        where = composed.source("optimizer.lr")
        errors.append(f"optimizer.lr={lr} ({where}): must be >= 0 (the size of each step)")
    name = composed.cfg.get("name")
    if isinstance(name, str) and not _inside(name):
        errors.append(
            f"name={name} ({composed.source('name')}): must stay inside runs_dir "
            "(a relative path without '..')"
        )
    return errors + _path_errors(composed)


def _path_errors(composed: SourcedConfig) -> list[str]:
    """Settings that would make a run write outside its folder: the recipe puts every
    file (checkpoints, events, plots) inside it, and runs_dir and name choose the folder;
    a checkpoint's file name is a name, not a path."""
    errors = []
    writers = {group: composed.cfg.get(group) for group in WRITERS}
    for key in WRITE_PATHS:
        for path, value in keys_named(writers, key):
            if value is not None:
                errors.append(
                    f"{path}={value} ({composed.source(path)}): a run writes only inside its "
                    "run folder; choose where runs go with runs_dir= and name="
                )
    for path, value in keys_named(writers, "filename"):
        if isinstance(value, str) and (PurePath(value).name != value or value in ("", ".", "..")):
            errors.append(
                f"{path}={value} ({composed.source(path)}): a file name inside the run's "
                "checkpoints/ folder, without '/' or '..'"
            )
    return errors


def _inside(name: str) -> bool:
    """Whether <runs_dir>/<name> is a folder under runs_dir (not itself, not outside)."""
    path = PurePath(name)
    return not path.is_absolute() and ".." not in path.parts and str(path) not in ("", ".")


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


def built_errors(composed: SourcedConfig) -> list[str]:
    """What only building tells: the optimiser and schedule on a stand-in parameter, and
    the device and precision against this machine."""
    import torch  # here, not above: the key check answers without it

    from litlab.builders import optimizer_factories

    errors: list[str] = []
    try:
        optimizer, scheduler, _ = optimizer_factories(composed)
        stand_in = [torch.zeros(1, requires_grad=True)]
        opt = _attempt(errors, composed, "optimizer", optimizer, stand_in)
        if opt is not None and scheduler is not None:
            _attempt(errors, composed, "scheduler", scheduler, opt)
    except ConfigError as exc:
        errors += exc.errors
    errors += placement_errors(composed, torch.cuda.is_available())
    return errors


def _attempt(errors: list[str], composed: SourcedConfig, path: str, make: Any, *args: Any) -> Any:
    try:
        return make(*args)
    except (ValueError, TypeError) as exc:
        node = OmegaConf.select(composed.cfg, path)
        errors.append(f"{path} ({composed.source(path)}, {node._target_}): {exc}")
        return None


def runs_on_gpu(accelerator: str, has_gpu: bool) -> bool:
    """Whether the Trainer's `accelerator` puts the run on a GPU, on this machine."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and has_gpu)


def placement_errors(composed: SourcedConfig, has_gpu: bool) -> list[str]:
    """A GPU that is not there, and a precision the CPU cannot run (Lightning would stop
    deep inside, or quietly switch 16-mixed to bf16-mixed)."""
    trainer = composed.cfg.trainer
    accelerator, precision = str(trainer.get("accelerator", "auto")), str(trainer.get("precision"))
    on_gpu = runs_on_gpu(accelerator, has_gpu)
    if accelerator in ("gpu", "cuda") and not has_gpu:
        where = composed.source("trainer.accelerator")
        return [
            f"trainer.accelerator={accelerator} ({where}): this machine has no GPU that torch "
            "can use; use trainer=default (the CPU)"
        ]
    if precision in ("16-mixed", "16") and not on_gpu:
        where = composed.source("trainer.precision")
        return [
            f"trainer.precision={precision} ({where}): float16 mixed precision needs a GPU; "
            "on the CPU use bf16-mixed or 32-true"
        ]
    return _clip_errors(composed) if precision in ("16-mixed", "16") else []


def _clip_errors(composed: SourcedConfig) -> list[str]:
    """float16's loss scaling with gradient clipping and a fused optimiser: Lightning
    refuses it with a traceback at the first step (it cannot unscale a fused optimiser's
    gradients before clipping them)."""
    clip = composed.cfg.trainer.get("gradient_clip_val")
    fused = OmegaConf.select(composed.cfg, "optimizer.fused")
    if not clip or fused is not True:
        return []
    return [
        f"trainer.gradient_clip_val={clip} ({composed.source('trainer.gradient_clip_val')}) "
        f"with trainer.precision={composed.cfg.trainer.precision} and optimizer.fused=true "
        f"({composed.source('optimizer.fused')}): Lightning cannot clip a fused optimiser's "
        "gradients under float16 scaling; add optimizer.fused=false (or use bf16-mixed)"
    ]
