"""The pre-flight check, once per command and before any folder is made: the schema
(schema.py, no torch), then what only torch tells: the optimiser and schedule built on a
stand-in parameter, the optional packages the config's classes need, and the device."""

from __future__ import annotations

import importlib
import importlib.util

from litlab.config import SourcedConfig
from litlab.devices import placement_errors, torch_build
from litlab.errors import ConfigError, MissingPackage
from litlab.schema import key_errors, target_nodes

# Classes whose package is optional: the package, and the pyproject group that installs it.
# Lightning's loggers import without theirs and fail only when built, after the run folder
# is made; timm imports torchvision, which fails to import when built for another torch.
OPTIONAL_PACKAGES = {
    "MLFlowLogger": ("mlflow", "mlflow"),
    "WandbLogger": ("wandb", "wandb"),
    "Timm": ("timm", "vision"),
}


def check(composed: SourcedConfig, build: bool = True) -> SourcedConfig:
    """Raise one ConfigError listing every problem; with `build`, import torch and also
    build the optimiser and schedule and look for the device."""
    if composed.checked:
        return composed
    errors = key_errors(composed)
    if not errors and build:
        import torch  # here, not above: the schema check answers without it

        from litlab.optim import optimizer_errors

        refuse_missing_packages(composed)
        errors = optimizer_errors(composed) + placement_errors(composed, torch.cuda.is_available())
    if errors:
        raise ConfigError(errors)
    composed.checked = build
    return composed


def refuse_missing_packages(composed: SourcedConfig) -> None:
    """A class whose optional package is missing, or fails to import: one line saying why,
    and the command that installs it."""
    for path, node in target_nodes(composed)[0].items():
        package, group = OPTIONAL_PACKAGES.get(str(node._target_).rpartition(".")[2], ("", ""))
        if not package:
            continue
        missing = importlib.util.find_spec(package) is None
        why = "not installed here" if missing else _import_failure(package)
        install = f'pip install -e ".[{group}]"'
        if "torchvision" in why:  # the usual cause: a torchvision built for another torch
            install += f" with a torchvision built for this torch ({torch_build()})"
        if why:
            raise MissingPackage(
                [f"{path} ({composed.source(path)}) needs the {package} package, {why}: {install}"]
            )


def _import_failure(package: str) -> str:
    """'' when `package` imports; else what its import raised, in one line."""
    try:
        importlib.import_module(package)
    # anything: torchvision's "operator torchvision::nms does not exist" is a RuntimeError
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return f"installed here but failing to import ({type(exc).__name__}: {first})"
    return ""
