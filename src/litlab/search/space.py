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
RANGES = {"float": FloatDistribution, "int": IntDistribution}
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
    """Split the words into the search option and the job. An option of configs/search/ is
    composed by Hydra; a file of your own is `search=~/x.yaml`."""
    option = [w.partition("=")[2] for w in words if w.startswith("search=")]
    if not option:
        allowed = ", ".join(groups().get("search", []))
        raise ConfigError([f"search: pick a search space with search=<option>; one of: {allowed}"])
    mine = [w for w in words if w.startswith(("search=", "search."))]
    own = Path(option[-1]).expanduser()
    if own.suffix == ".yaml":
        if not own.is_file():
            raise ConfigError([f"search={option[-1]} ({CLI}): no such file"])
        dotted = [w.removeprefix("search.") for w in mine if w.startswith("search.")]
        cfg = OmegaConf.merge(OmegaConf.load(own), OmegaConf.from_dotlist(dotted))
        source, stem = str(own), own.stem
    else:
        composed = compose(mine)
        cfg, stem = composed.cfg.search, option[-1]
        source = composed.source("search").partition(" + ")[0]
    user = [w for w in words if w not in mine]
    job = [*(str(w) for w in cfg.get("job") or []), *user]
    name = [stem, *(w.partition("=")[2] for w in user if w.startswith("name="))][-1]
    folder = Path(compose(job).cfg.runs_dir).expanduser() / "searches" / name
    return Search(name, source, cfg, job, folder)


def check(search: Search) -> dict[str, BaseDistribution]:
    """Every error of the option at once (keys, values, ranges), then every value of the
    space composed into the job and checked as a run would be; the space."""
    cfg, source = search.cfg, search.source
    keys = ", ".join(KEYS)
    errors = [f"search.{k} ({source}): unknown key; allowed: {keys}" for k in cfg if k not in KEYS]
    n_trials = cfg.get("n_trials")
    expected = {
        **{k: f"choose one of: {', '.join(a)}" for k, a in CHOICES.items() if cfg.get(k) not in a},
        "n_trials": "" if type(n_trials) is int and n_trials >= 1 else "expected an int >= 1",
        "seed": "" if isinstance(cfg.get("seed"), int) else "expected an int",
        "metric": "" if isinstance(cfg.get("metric"), str) else "expected a metric name",
    }
    errors += [f"search.{k}={cfg.get(k)} ({source}): {e}" for k, e in expected.items() if e]
    if not isinstance(cfg.get("params"), DictConfig) or not cfg.params:
        errors.append(f"search.params ({source}): expected a mapping of keys to ranges or lists")
    space: dict[str, BaseDistribution] = {}
    for name, node in (cfg.get("params") or {}).items():
        try:
            space[str(name)] = distribution(node)
        except ConfigError as exc:
            errors += [f"search.params.{name} ({source}): {e}" for e in exc.errors]
    if errors:
        raise ConfigError(errors)
    errors = _check_samples(search, space)
    if errors:
        raise ConfigError(list(dict.fromkeys(errors)))
    return space


def distribution(node: Any) -> BaseDistribution:
    """A list is a categorical choice (a list value, like hidden sizes, as its JSON text:
    Optuna's choices are scalars), a mapping a float or int range; Optuna checks the bounds."""
    if isinstance(node, DictConfig) and node.get("type") not in RANGES:
        kind = node.get("type")
        raise ConfigError([f"type={kind}: choose one of: float, int (a list for choices)"])
    if isinstance(node, DictConfig) and set(node) - set(RANGE_KEYS):
        unknown = sorted(set(node) - set(RANGE_KEYS))[0]
        raise ConfigError([f"unknown key {unknown}; allowed: {', '.join(RANGE_KEYS)}"])
    try:
        if isinstance(node, ListConfig):
            return CategoricalDistribution([choice(v) for v in OmegaConf.to_container(node)])
        if isinstance(node, DictConfig):
            kwargs = {k: v for k, v in OmegaConf.to_container(node).items() if k != "type"}
            return RANGES[node.type](**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError([str(exc)]) from None
    raise ConfigError([f"{node!r}: expected a list of choices or {{type, low, high}}"])


def space_of(search: Search) -> dict[str, BaseDistribution]:
    """The space of a search whose option was checked (`check`)."""
    return {str(k): distribution(v) for k, v in search.cfg.params.items()}


def choice(value: Any) -> Any:
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

    ends = {
        k: d.choices if isinstance(d, CategoricalDistribution) else (d.low, d.high)
        for k, d in space.items()
    }
    errors = []
    for name, values in ends.items():
        for value in values:
            words = words_of({k: v[0] for k, v in ends.items()} | {name: value})
            try:
                _refuse_ddp(check_run(compose([*search.job, *words])).cfg.trainer)
            except ConfigError as exc:
                where = f"search.params.{name}={text(value)} ({search.source})"
                errors += [f"{where}: {e}" for e in exc.errors]
    return errors


def _refuse_ddp(trainer: DictConfig) -> None:
    """Lightning would start every DDP process of a trial by running the worker again."""
    strategy = trainer.get("strategy", "")
    if isinstance(strategy, DictConfig):  # a node: its class names it
        strategy = str(strategy.get("_target_", "")).rpartition(".")[2]
    if "ddp" in str(strategy).lower():
        why = "a search trial runs inside a worker and cannot launch DDP processes"
        raise ConfigError([f"trainer.strategy={strategy}: {why}; use -j N (one trial per GPU)"])


def default_params(search: Search) -> tuple[dict[str, Any], list[str]]:
    """The job's own value of each searched key, and the words of those outside the space."""
    composed = compose(search.job)
    params, outside = {}, []
    for name, dist in space_of(search).items():
        value = composed.choices.get(name, OmegaConf.select(composed.cfg, name))
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value)
        value = choice(value)
        if isinstance(dist, CategoricalDistribution):
            inside = value in dist.choices
        else:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            inside = number and dist.low <= value <= dist.high
        if inside:
            params[name] = value
        else:
            outside.append(f"{name}={text(value)}")
    return params, outside
