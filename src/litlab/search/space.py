"""The search space: `search=<option>` and `search.*` words, checked, as Optuna distributions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from litlab.config import CLI, groups
from litlab.errors import ConfigError
from litlab.rundirs import compose

KEYS = ("job", "n_trials", "metric", "direction", "sampler", "seed", "pruner", "storage", "params")
RANGE_KEYS = ("type", "low", "high", "log", "step")
CHOICES = {
    "direction": ("minimize", "maximize"),
    "sampler": ("tpe", "random"),
    "pruner": ("median", "hyperband", "none"),
}


@dataclass
class Search:
    name: str  # the folder under <runs_dir>/searches/ and the study's name
    source: str  # the option's file, for error messages
    cfg: DictConfig  # the option's keys (KEYS), with the command line's search.* words
    job: list[str]  # every trial's words before its own: the option's job, then the user's
    folder: Path


def parse(words: list[str]) -> Search:
    """Split the words into the search option (`search=`, `search.key=`) and the job. An
    option of configs/search/ is composed by Hydra; a file of your own is `search=~/x.yaml`."""
    option = [w.partition("=")[2] for w in words if w.startswith("search=")]
    if not option:
        allowed = ", ".join(groups().get("search", []))
        raise ConfigError([f"search: pick a search space with search=<option>; one of: {allowed}"])
    mine = [w for w in words if w.startswith(("search=", "search."))]
    own = Path(option[-1]).expanduser()
    if own.suffix == ".yaml":
        if not own.is_file():
            raise ConfigError([f"search={option[-1]} ({CLI}): no such file"])
        changes = OmegaConf.from_dotlist([w.removeprefix("search.") for w in mine[1:]])
        cfg, source, stem = OmegaConf.merge(OmegaConf.load(own), changes), str(own), own.stem
    else:
        composed = compose(mine)
        cfg, stem = composed.cfg.search, option[-1]
        source = composed.source("search").partition(" + ")[0]
    user = [w for w in words if w not in mine]
    named = [w.partition("=")[2] for w in user if w.startswith("name=")]
    job = [*(str(w) for w in cfg.get("job") or []), *user]
    name = named[-1] if named else stem
    folder = Path(compose(job).cfg.runs_dir).expanduser() / "searches" / name
    return Search(name, source, cfg, job, folder)


def check(search: Search) -> dict[str, BaseDistribution]:
    """Every error of the search option at once (keys, values, bounds), then every value
    of the space composed into the job and checked as a run would be; the space."""
    errors = [
        f"search.{key} ({search.source}): unknown key; allowed: {', '.join(KEYS)}"
        for key in search.cfg
        if key not in KEYS
    ]
    errors += _check_values(search.cfg, search.source)
    space: dict[str, BaseDistribution] = {}
    for name, node in (search.cfg.get("params") or {}).items():
        try:
            space[str(name)] = distribution(node)
        except ConfigError as exc:
            errors += [f"search.params.{name} ({search.source}): {e}" for e in exc.errors]
    if errors:
        raise ConfigError(errors)
    errors = _check_samples(search, space)
    if errors:
        raise ConfigError(list(dict.fromkeys(errors)))
    return space


def _check_values(cfg: DictConfig, source: str) -> list[str]:
    n_trials, params = cfg.get("n_trials"), cfg.get("params")
    expected = {
        **{k: f"choose one of: {', '.join(a)}" for k, a in CHOICES.items() if cfg.get(k) not in a},
        "n_trials": "" if type(n_trials) is int and n_trials >= 1 else "expected an int >= 1",
        "seed": "" if isinstance(cfg.get("seed"), int) else "expected an int",
        "metric": "" if isinstance(cfg.get("metric"), str) else "expected a metric name",
    }
    errors = [f"search.{k}={cfg.get(k)} ({source}): {e}" for k, e in expected.items() if e]
    if not isinstance(params, DictConfig) or not params:
        errors.append(f"search.params ({source}): expected a mapping of keys to ranges or lists")
    return errors


def distribution(node: Any) -> BaseDistribution:
    """The Optuna distribution of one entry of `params`: a list is a categorical choice
    (a list value, like hidden sizes, is kept as its text: Optuna's choices are scalars),
    a mapping a float or int range."""
    if isinstance(node, ListConfig):
        if not node:
            raise ConfigError(["an empty list: give the values to choose from"])
        return CategoricalDistribution([choice(v) for v in OmegaConf.to_container(node)])
    if not isinstance(node, DictConfig):
        raise ConfigError([f"{node!r}: expected a list of choices or {{type, low, high}}"])
    unknown = [k for k in node if k not in RANGE_KEYS]
    if unknown:
        raise ConfigError([f"unknown key {unknown[0]}; allowed: {', '.join(RANGE_KEYS)}"])
    kind, low, high = node.get("type"), node.get("low"), node.get("high")
    log, step = bool(node.get("log", False)), node.get("step")
    if kind not in ("float", "int"):
        raise ConfigError([f"type={kind}: choose one of: float, int (a list for choices)"])
    if not isinstance(low, int | float) or not isinstance(high, int | float) or low >= high:
        raise ConfigError([f"low={low}, high={high}: expected numbers with low < high"])
    if log and low <= 0:
        raise ConfigError([f"low={low} with log: true: a log range needs low > 0"])
    try:
        if kind == "int":
            return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
        return FloatDistribution(float(low), float(high), log=log, step=step)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None


def space_of(search: Search) -> dict[str, BaseDistribution]:
    """The space of a search whose option was checked (`check`)."""
    return {str(k): distribution(v) for k, v in (search.cfg.params or {}).items()}


def choice(value: Any) -> Any:
    """A value as Optuna's choices hold it: a list or a mapping as its JSON text."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else value


def words_of(params: dict[str, Any]) -> list[str]:
    """The command-line words of a trial's parameters (`optimizer=adam`, `optimizer.lr=…`)."""
    return [f"{name}={text(value)}" for name, value in params.items()]


def text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else repr(value) if isinstance(value, float) else str(value)


def _check_samples(search: Search, space: dict[str, BaseDistribution]) -> list[str]:
    """Compose the job with every choice and both ends of every range (the other
    parameters at their first value), as a run would check it."""
    from litlab.check import check as check_run  # torch: only once the option is sound

    first = {name: _samples(d)[0] for name, d in space.items()}
    errors = []
    for name, dist in space.items():
        for value in _samples(dist):
            try:
                composed = check_run(compose([*search.job, *words_of(first | {name: value})]))
                _check_trainer(composed.cfg.trainer)
            except ConfigError as exc:
                where = f"search.params.{name}={text(value)} ({search.source})"
                errors += [f"{where}: {e}" for e in exc.errors]
    return errors


def _samples(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def _check_trainer(trainer: DictConfig) -> None:
    """A DDP trial would start this worker again in every process it launches (Lightning
    re-runs the command), and Optuna's callback prunes under DDP only from a database."""
    strategy = trainer.get("strategy", "")
    if isinstance(strategy, DictConfig):  # a node: its class names it
        strategy = str(strategy.get("_target_", "")).rpartition(".")[2]
    if "ddp" in str(strategy).lower():
        why = "a search trial runs inside a worker and cannot launch DDP processes"
        raise ConfigError(
            [f"trainer.strategy={strategy}: {why}; use -j N (one trial per GPU) instead"]
        )


def default_params(search: Search) -> tuple[dict[str, Any], list[str]]:
    """The job's own value of each searched key (a group's option, a key's value), and
    the words of those outside the space."""
    composed = compose(search.job)
    params, outside = {}, []
    for name, dist in space_of(search).items():
        value = composed.choices.get(name, OmegaConf.select(composed.cfg, name))
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value)
        value = choice(value)
        if _contains(dist, value):
            params[name] = value
        else:
            outside.append(f"{name}={text(value)}")
    return params, outside


def _contains(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and dist.low <= value <= dist.high
