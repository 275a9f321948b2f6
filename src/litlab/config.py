"""Config: compose YAML files and command-line words, check them, turn nodes into objects.

`compose` reads `configs/train.yaml`, applies the `group=option`, `a.b=value` and `~a.b`
(delete) words (Hydra's syntax, without Hydra), and resolves interpolations. `validate` checks every
node against the signature of the class it builds and reports all errors at once.
`instantiate` is the one way a config node becomes an object.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from litlab.errors import ConfigError
from litlab.signatures import Spec, accepts, locate, signature, spec, type_name

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# Options of these groups are merged at the top level: they change several groups at once.
GLOBAL_GROUPS = ("experiment", "debug")
# Keys of the scheduler node that go to Lightning's lr_scheduler dict, not the scheduler.
SCHEDULER_KEYS = ("interval", "frequency", "monitor")
CLI = "the command line"
PRIMARY = "configs/train.yaml"


@dataclasses.dataclass
class RunConfig:
    """The top-level keys that are not groups."""

    name: str | None  # runs go to <runs_dir>/<name>/<timestamp>/; None: the data option
    runs_dir: str
    seed: int
    resume: str | None  # a run folder to continue from its checkpoints/last.ckpt


@dataclasses.dataclass
class Composed:
    cfg: DictConfig
    sources: dict[str, str]  # dotted key -> the file or "the command line" that set it
    choices: dict[str, str | None]  # group -> the option picked

    def source(self, key: str) -> str:
        """Where the value of `key` came from: for a node, every file that set part of it;
        for a key no file set, the source of its nearest parent."""
        under = [s for k, s in self.sources.items() if k == key or k.startswith(key + ".")]
        if under:
            return " + ".join(dict.fromkeys(under))
        parent = key.rpartition(".")[0]
        return self.source(parent) if parent else CLI


# --------------------------------------------------------------------------- compose


def groups() -> dict[str, list[str]]:
    """Every config group and its options, as found on disk."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(CONFIG_DIR.iterdir())
        if d.is_dir()
    }


def compose(words: list[str]) -> Composed:
    """Build the resolved config from `train.yaml` and the user's words; with
    `resume=FOLDER`, from that run's config.yaml and the user's `a.b=value` words."""
    picked, dotted = _parse_words(words, groups())
    resume = [w.partition("=")[2] for w in dotted if w.startswith("resume=")]
    if resume and resume[-1] not in ("null", ""):
        return _resumed(resume[-1], picked, dotted)
    primary = _load(CONFIG_DIR / "train.yaml")
    selection = _defaults(primary, PRIMARY)
    experiment = picked.get("experiment", selection.get("experiment"))
    exp_source = f"configs/experiment/{experiment}.yaml"
    exp_body = _load(_option_path(CONFIG_DIR, "experiment", experiment)) if experiment else None
    exp_choice = _defaults(exp_body, exp_source) if exp_body else {}
    selection.update(exp_choice)
    selection.update(picked)  # the command line wins over the experiment's choices
    layers = _group_layers(selection, chosen=set(exp_choice) | set(picked), picked=set(picked))
    layers.append((primary, PRIMARY))
    if exp_body is not None:
        layers.append((exp_body, exp_source))
    if selection.get("debug"):
        path = _option_path(CONFIG_DIR, "debug", selection["debug"])
        layers.append((_load(path), _rel(path, CONFIG_DIR)))
    layers.append((_from_dotlist([w for w in dotted if not w.startswith("~")]), CLI))
    composed = _merge(layers, selection)
    return _delete(composed, [w[1:] for w in dotted if w.startswith("~")])


def _group_layers(
    selection: dict[str, str | None], chosen: set[str], picked: set[str]
) -> list[tuple[DictConfig, str]]:
    """One layer per selected group option, in the order of the defaults list. A group
    file may pick options of groups listed after it (data=csv picks module=regressor),
    unless the command line or the experiment (`chosen`) picked them."""
    layers: list[tuple[DictConfig, str]] = []
    order = list(selection)
    for index, group in enumerate(order):
        option = selection[group]
        if group in GLOBAL_GROUPS:
            continue
        if option is None:  # group=null switches the group off
            layers.append((OmegaConf.create({group: None}), CLI if group in picked else PRIMARY))
            continue
        for node, source, picks in _option_layers(group, option):
            for later, choice in picks.items():
                if later not in order[index + 1 :]:
                    raise ConfigError([f"{source}: can only pick groups listed after {group}"])
                if later not in chosen:
                    selection[later] = choice
            layers.append((OmegaConf.create({group: node or None}), source))
    return layers


def _option_layers(group: str, option: str) -> list[tuple[DictConfig, str, dict]]:
    """The file of `group=option` as (node, source, its picks of other groups), preceded
    by the option it names in its own group, if any (trainer/gpu.yaml starts from
    `- trainer: default` and changes only what differs)."""
    path = _option_path(CONFIG_DIR, group, option)
    source = _rel(path, CONFIG_DIR)
    node = _load(path)
    picks = _defaults(node, source)
    base = picks.pop(group, None)
    if base == option:
        raise ConfigError([f"{source}: cannot start from itself"])
    return [*(_option_layers(group, base) if base else []), (node, source, picks)]


def _resumed(folder: str, picked: dict[str, str | None], dotted: list[str]) -> Composed:
    """The config a run ran with, changed by the command line's single keys."""
    stored = Path(folder).expanduser() / "config.yaml"
    if not stored.is_file():
        raise ConfigError([f"resume={folder} ({CLI}): no run there (no config.yaml)"])
    if picked:
        words = " ".join(f"{group}={option}" for group, option in picked.items())
        raise ConfigError(
            [f"{words} ({CLI}): a resumed run keeps its groups; change keys (a.b=value)"]
        )
    layers = [(_load(stored), str(stored)), (_from_dotlist(dotted), CLI)]
    return _merge(layers, {})


def _parse_words(words: list[str], options: dict[str, list[str]]) -> tuple[dict, list[str]]:
    picked: dict[str, str | None] = {}
    dotted: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        if word.startswith("~") and not eq:  # Hydra's "~a.b": delete key a.b
            dotted.append(word)
            continue
        if not eq or not key:
            raise ConfigError([f"'{word}': expected group=option or key=value"])
        if key not in options:
            dotted.append(word)
            continue
        if value in ("null", "none") and "none" not in options[key]:
            picked[key] = None
        elif value in options[key]:
            picked[key] = value
        else:
            allowed = ", ".join(options[key])
            raise ConfigError([f"{key}={value} ({CLI}): no such option; choose one of: {allowed}"])
    return picked, dotted


def _defaults(node: DictConfig, where: str) -> dict[str, str | None]:
    """Pop a Hydra-style defaults list (`- group: option`) off `node`."""
    entries = node.pop("defaults", [])
    selection: dict[str, str | None] = {}
    for entry in entries:
        if not isinstance(entry, DictConfig) or len(entry) != 1:
            raise ConfigError([f"{where}: each defaults entry must be one 'group: option'"])
        ((group, option),) = entry.items()
        selection[str(group)] = option
    return selection


def _option_path(config_dir: Path, group: str, option: str) -> Path:
    path = config_dir / group / f"{option}.yaml"
    if not path.is_file():
        allowed = ", ".join(groups().get(group, []))
        raise ConfigError([f"{group}={option}: no such option; choose one of: {allowed}"])
    return path


def _load(path: Path) -> DictConfig:
    try:
        node = OmegaConf.load(path)
    except (OmegaConfBaseException, OSError, ValueError) as exc:
        raise ConfigError([f"{path}: cannot be read: {exc}"]) from None
    return node if isinstance(node, DictConfig) else OmegaConf.create()


def _from_dotlist(dotted: list[str]) -> DictConfig:
    try:
        return OmegaConf.from_dotlist(dotted)
    except OmegaConfBaseException as exc:
        raise ConfigError([f"{' '.join(dotted)} ({CLI}): {exc}"]) from None


def _delete(composed: Composed, keys: list[str]) -> Composed:
    for key in keys:
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(composed.cfg, parent_key) if parent_key else composed.cfg
        if not isinstance(parent, DictConfig) or name not in parent:
            raise ConfigError([f"~{key} ({CLI}): there is no key {key} to delete"])
        del parent[name]
    return composed


def _rel(path: Path, config_dir: Path) -> str:
    return str(path.relative_to(config_dir.parent))


def _merge(layers: list[tuple[DictConfig, str]], choices: dict[str, str | None]) -> Composed:
    sources: dict[str, str] = {}
    for node, source in layers:
        for key in _leaf_keys(node):
            sources[key] = source
    try:
        cfg = OmegaConf.merge(*(node for node, _ in layers))
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError([f"config cannot be resolved: {exc}"]) from None
    return Composed(cfg, sources, choices)


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value in a plain nested dict."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    if not isinstance(node, dict) or not node:
        return [prefix] if prefix else []
    return [leaf for k, v in node.items() for leaf in _leaf_keys(v, f"{prefix}.{k}".lstrip("."))]


# --------------------------------------------------------------------------- validate


def validate(composed: Composed) -> None:
    """Check every key and type of the config; raise one ConfigError listing all problems."""
    cfg, errors = composed.cfg, []
    expected = {f.name for f in dataclasses.fields(RunConfig)} | set(groups()) - set(GLOBAL_GROUPS)
    for key in cfg:
        if key not in expected:
            errors.append(_unknown(composed, str(key), expected))
    for name, annotation in typing.get_type_hints(RunConfig).items():
        if name in cfg:
            errors += _check_value(composed, name, cfg[name], spec(annotation))
    for path, node in target_nodes(cfg).items():
        errors += _check_node(composed, path, node)
    if errors:
        raise ConfigError(errors)


def target_nodes(cfg: DictConfig) -> dict[str, DictConfig]:
    """Every node that builds an object, by dotted path (callbacks are a mapping of them)."""
    nodes = {
        key: cfg.get(key)
        for key in ("data", "model", "module", "optimizer", "scheduler", "trainer")
    }
    nodes["logger"] = cfg.get("logger")
    for name, node in (cfg.get("callbacks") or {}).items():
        nodes[f"callbacks.{name}"] = node
    return {path: node for path, node in nodes.items() if node is not None}


def _check_node(composed: Composed, path: str, node: Any) -> list[str]:
    if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
        return [f"{path} ({composed.source(path)}): needs a _target_ naming the class to build"]
    try:
        found = signature(node._target_)
    except ConfigError as exc:
        return [f"{path}._target_ ({composed.source(path + '._target_')}): {exc}"]
    errors = []
    for key, value in node.items():
        key = str(key)
        if key == "_target_" or (path == "scheduler" and key in SCHEDULER_KEYS):
            continue
        if key not in found.params:
            if not found.takes_any:
                errors.append(_unknown(composed, f"{path}.{key}", found.params, node._target_))
            continue
        errors += _check_value(composed, f"{path}.{key}", value, found.params[key])
    return errors


def _check_value(composed: Composed, key: str, value: Any, expected: Spec) -> list[str]:
    plain = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if accepts(plain, expected):
        return []
    return [
        f"{key}={plain!r} ({composed.source(key)}): expected {type_name(expected)}, "
        f"got {type(plain).__name__}"
    ]


def _unknown(composed: Composed, key: str, allowed: Any, target: str | None = None) -> str:
    parent, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, [str(a) for a in allowed], n=1)
    hint = f"; did you mean {(parent + '.' if parent else '') + close[0]}?" if close else ""
    owner = f" of {target}" if target else ""
    return f"{key} ({composed.source(key)}): unknown key{owner}{hint}"


# --------------------------------------------------------------------------- instantiate


def instantiate(node: DictConfig | dict[str, Any], /, **injected: Any) -> Any:
    """Build `node._target_(**node, **injected)`: the config holds choices, the caller
    injects what is known only at run time (parameters, sizes, paths)."""
    kwargs = OmegaConf.to_container(node) if OmegaConf.is_config(node) else dict(node)
    target = locate(kwargs.pop("_target_"))
    return target(**kwargs, **injected)
