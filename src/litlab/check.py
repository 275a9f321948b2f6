"""The pre-flight check, once per command and before any folder is made: first the
schema (schema.py, no torch), then, with torch, what only building tells: the optimiser
and schedule on a stand-in parameter (optim.py), the optional packages the config's
classes need, and the device (devices.py). Errors a data set or a network raise about
their own arguments come when the recipe builds them, each naming its node."""

from __future__ import annotations

import importlib
import importlib.util

from litlab.config import SourcedConfig
from litlab.devices import placement_errors, torch_build
from litlab.errors import ConfigError, MissingPackage
from litlab.run_length import no_op_notes
from litlab.schema import key_errors, target_nodes

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
    build the optimiser and schedule on a stand-in parameter and look for the device
    (this imports torch)."""
    if composed.checked:
        return composed
    errors = key_errors(composed)
    if errors:
        raise ConfigError(errors)
    if build:
        import torch  # here, not above: the schema check answers without it

        from litlab.optim import optimizer_errors

        refuse_missing_packages(composed)
        errors = optimizer_errors(composed)
        errors += placement_errors(composed, torch.cuda.is_available())
    if errors:
        raise ConfigError(errors)
    composed.notes = list(dict.fromkeys([*composed.notes, *no_op_notes(composed.cfg)]))
    composed.checked = build
    return composed


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
                install += f" with a torchvision built for this torch ({torch_build()})"
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
