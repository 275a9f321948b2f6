"""Config: compose YAML files and command-line words; turn nodes into objects.

`compose` reads `configs/train.yaml`, applies the `group=option`, `a.b=value` and `~a.b`
(delete) words (Hydra's syntax), and resolves interpolations; `check.py` checks the
result. `instantiate` is the one way a config node becomes an object.

Why not Hydra itself, whose syntax this follows: three things it does not do, and the
template relies on. Every value keeps the file or command-line word it came from, so an
error names it (`optimizer.lr=-1 (the command line)`); a data option picks the module
that fits it (`data=diabetes` brings `module=regressor`) unless the user picked one; and
composing needs no import of torch or Lightning, so a typo is reported in 0.1 s, not
after the 3 s of imports (measured for the performance issue).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from litlab.errors import ConfigError
from litlab.signatures import locate
from litlab.trust import read_config_file

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# A `configs/` folder in the working directory adds options of its own (Hydra's search
# path): `configs/model/resmlp.yaml` there is `model=resmlp`, beside the shipped ones.
USER_CONFIG_DIR = Path("configs")
# Kept when the command line names another `_target_` for a node: how it is built
# (`_partial_`) and when Lightning steps a scheduler (`lightning`), not its arguments.
KEPT_ON_NEW_TARGET = ("_partial_", "lightning")
# Options of these groups are merged at the top level: they change several groups at once.
GLOBAL_GROUPS = ("experiment", "debug")
# Options of this group are read by `litlab search`, never part of a run's config.
SEARCH_GROUP = "search"
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
    checked: bool = False  # set by check.check: a command checks its config once
    notes: list[str] = dataclasses.field(default_factory=list)  # told once, before the run
    words: list[str] = dataclasses.field(default_factory=list)  # the command line's words
    # Files that may come from someone else (a checkpoint, a run folder's config.yaml):
    # a _target_ they set must be one trust.allowed_target accepts. configs/ and the
    # command line are the user's own and may name any target.
    untrusted: tuple[str, ...] = ()

    def source(self, key: str) -> str:
        """Where the value of `key` came from: for a node, every file that set part of it;
        for a key no file set, the source of its nearest parent."""
        under = [s for k, s in self.sources.items() if k == key or k.startswith(key + ".")]
        if under:
            return " + ".join(dict.fromkeys(under))
        parent = key.rpartition(".")[0]
        return self.source(parent) if parent else CLI


# --------------------------------------------------------------------------- resolvers
# OmegaConf has no arithmetic; these two let a config say "a quarter of the run", so a
# schedule or the validation cadence scales with trainer.max_epochs.


def fraction(part: float, total: Any) -> int | None:
    """`${fraction:0.25,${trainer.max_epochs}}`: round(part * total), at least 1; None for
    a run of no set length (the check then names the key that needs one)."""
    if not _is_length(total):
        return None
    return max(1, round(float(part) * total))


def every(part: float, total: Any) -> int | None:
    """`${every:0.05,${trainer.max_epochs}}`: the largest divisor of `total` up to
    part * total (at least 1), so the last of `total` epochs is always one of them (the
    run validates at its end, whatever its length); None as for `fraction`."""
    if not _is_length(total):
        return None
    limit = max(1, int(float(part) * total))
    return max(d for d in range(1, limit + 1) if total % d == 0)


def _is_length(total: Any) -> bool:
    return isinstance(total, int) and not isinstance(total, bool) and total >= 1


OmegaConf.register_resolver("fraction", fraction, replace=True)
OmegaConf.register_resolver("every", every, replace=True)


# --------------------------------------------------------------------------- compose


def config_dirs() -> list[Path]:
    """Where options are looked for: the working directory's `configs/` first (a user's
    option of a shipped name replaces it), then the shipped ones."""
    user = USER_CONFIG_DIR.resolve()
    return [user, CONFIG_DIR] if user.is_dir() and user != CONFIG_DIR else [CONFIG_DIR]


def groups() -> dict[str, list[str]]:
    """Every config group and its options, as found on disk."""
    found: dict[str, set[str]] = {}
    for root in config_dirs():
        for d in (d for d in root.iterdir() if d.is_dir()):
            found.setdefault(d.name, set()).update(p.stem for p in d.glob("*.yaml"))
    return {group: sorted(found[group]) for group in sorted(found)}


def compose(words: list[str], trust: bool = False) -> Composed:
    """Build the resolved config from `train.yaml` and the user's words; with
    `resume=FOLDER`, from that run's config.yaml (whose targets are checked unless
    `trust`) and the user's `a.b=value` words."""
    words = [_plain(w) for w in words]
    picked, dotted = _parse_words(words, groups())
    resume = [w.partition("=")[2] for w in dotted if w.startswith("resume=")]
    if resume and resume[-1] not in ("null", ""):
        return _resumed(resume[-1], picked, dotted, trust)
    primary = _load(CONFIG_DIR / "train.yaml")
    selection = _defaults(primary, PRIMARY)
    experiment = picked.get("experiment", selection.get("experiment"))
    exp_path = _option_path("experiment", experiment) if experiment else None
    exp_body = _load(exp_path) if exp_path else None
    exp_source = _rel(exp_path, CONFIG_DIR) if exp_path else ""
    exp_choice = _defaults(exp_body, exp_source) if exp_body else {}
    notes = _yield_to_picked(exp_body, exp_choice, picked, experiment) if exp_body else []
    selection.update(exp_choice)
    selection.update(picked)  # the command line wins over the experiment's choices
    layers = _group_layers(selection, chosen=set(exp_choice) | set(picked), picked=set(picked))
    layers.append((primary, PRIMARY))
    if exp_body is not None:
        layers.append((exp_body, exp_source))
    if selection.get("debug"):
        path = _option_path("debug", selection["debug"])
        layers.append((_load(path), _rel(path, CONFIG_DIR)))
    targets = [w for w in dotted if w.partition("=")[0].endswith("._target_")]
    target_notes, dropped = _new_targets(layers, targets)
    layers.append((_from_dotlist([w for w in dotted if not w.startswith("~")]), CLI))
    composed = _merge(layers, selection)
    composed.notes, composed.words = notes + target_notes, words
    # a key the new _target_ dropped is gone already: `~optimizer.fused` asks no more
    return _delete(composed, [w[1:] for w in dotted if w.startswith("~") and w[1:] not in dropped])


def _plain(word: str) -> str:
    """Hydra's `+a.b=v` (add a key) and `++a.b=v` (add or set) are `a.b=v` here: a word
    may add a key or set one, and the check refuses keys no class takes."""
    return word.lstrip("+") if "=" in word else word


def _yield_to_picked(
    experiment: DictConfig, choices: dict[str, str | None], picked: dict, name: str
) -> list[str]:
    """Drop the experiment's keys for a group whose option the command line changed: they
    were meant for the experiment's option (Adam's lr is no rate for SGD). One note each."""
    notes = []
    for group, option in picked.items():
        if group not in choices or choices[group] == option:
            continue
        if group == "data" and experiment.get("name") is not None:  # it names the data
            notes.append(
                f"data={option} ({CLI}): runs go to runs/{option}, not to "
                f"experiment={name}'s name={experiment.pop('name')}"
            )
        if experiment.get(group) is None:
            continue
        keys = ", ".join(f"{group}.{k}" for k in _leaf_keys(experiment.pop(group)))
        notes.append(
            f"{group}={option} ({CLI}) keeps its own values: experiment={name}'s {keys} "
            f"(meant for {group}={choices[group]}) left out; set them on the command line to "
            "keep them"
        )
    return notes


def _new_targets(
    layers: list[tuple[DictConfig, str]], targets: list[str]
) -> tuple[list[str], set[str]]:
    """A `_target_` changed on the command line drops the node's keys from the files (they
    were arguments of the old class), all but those in KEPT_ON_NEW_TARGET. Returns a note
    per changed node and the keys dropped."""
    notes, every_dropped = [], set()
    for word in targets:
        key, _, new = word.partition("=")
        path = key.removesuffix("._target_")
        nodes = [(n, s) for n, s in layers if isinstance(OmegaConf.select(n, path), DictConfig)]
        old = [OmegaConf.select(n, key) for n, _ in nodes if OmegaConf.select(n, key) is not None]
        if not old or old[-1] == new:
            continue
        dropped = []
        for node, _ in nodes:
            sub = OmegaConf.select(node, path)
            for name in [str(k) for k in sub if k not in KEPT_ON_NEW_TARGET]:
                if name != "_target_":
                    dropped.append(f"{path}.{name}")
                del sub[name]
            if not sub:  # nothing of this file is left in the node: it is no source of it
                parent, _, last = path.rpartition(".")
                del (OmegaConf.select(node, parent) if parent else node)[last]
        every_dropped.update(dropped)
        if dropped:
            keys = ", ".join(dict.fromkeys(dropped))
            notes.append(
                f"{word} ({CLI}): {keys} of {old[-1]} left out (set them again if {new} takes them)"
            )
    return notes, every_dropped


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
    path = _option_path(group, option)
    source = _rel(path, CONFIG_DIR)
    node = _load(path)
    picks = _defaults(node, source)
    base = picks.pop(group, None)
    if base == option:
        raise ConfigError([f"{source}: cannot start from itself"])
    return [*(_option_layers(group, base) if base else []), (node, source, picks)]


def _resumed(
    folder: str, picked: dict[str, str | None], dotted: list[str], trust: bool
) -> Composed:
    """The config a run ran with, changed by the command line's single keys. Rank 0 reads
    it: the other machines of a job may have no such folder."""
    from litlab.rundirs import from_rank_zero  # here: rundirs imports this module

    stored = Path(folder).expanduser() / "config.yaml"
    if picked:
        words = " ".join(f"{group}={option}" for group, option in picked.items())
        raise ConfigError(
            [f"{words} ({CLI}): a resumed run keeps its groups; change keys (a.b=value)"]
        )

    def read() -> dict[str, Any]:
        if not stored.is_file():
            raise ConfigError([f"resume={folder} ({CLI}): no run there (no config.yaml)"])
        return read_config_file(stored)

    layers = [(OmegaConf.create(from_rank_zero(read)), str(stored)), (_from_dotlist(dotted), CLI)]
    composed = _merge(layers, {})
    composed.untrusted = () if trust else (str(stored),)
    return composed


def stored_config(
    config: dict[str, Any], choices: dict[str, Any], source: str, trust: bool
) -> Composed:
    """A config read back from a checkpoint (checked as plain data by load_checkpoint):
    every value comes from `source`, whose targets are checked unless `trust`."""
    cfg = OmegaConf.create(config)
    sources = dict.fromkeys(_leaf_keys(cfg), source)
    return Composed(cfg, sources, choices, untrusted=() if trust else (source,))


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


def _option_path(group: str, option: str) -> Path:
    """The file of `group=option`: in the working directory's configs/, else the shipped."""
    for path in (root / group / f"{option}.yaml" for root in config_dirs()):
        if path.is_file():
            return path
    allowed = ", ".join(groups().get(group, []))
    raise ConfigError([f"{group}={option}: no such option; choose one of: {allowed}"])


def _load(path: Path) -> DictConfig:
    try:
        node = OmegaConf.load(path)
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())  # a YAML error's text spans lines
        raise ConfigError([f"{path}: cannot be read: {reason}"]) from None
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
    """A shipped file as `configs/...`; a user's as `./configs/...` (or its full path)."""
    if path.is_relative_to(config_dir):
        return str(path.relative_to(config_dir.parent))
    cwd = Path.cwd().resolve()
    return f"./{path.relative_to(cwd)}" if path.is_relative_to(cwd) else str(path)


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


# --------------------------------------------------------------------------- instantiate


def instantiate(node: DictConfig | dict[str, Any], /, **injected: Any) -> Any:
    """Build `node._target_(**node, **injected)`: the config holds choices, the caller
    injects what is known only at run time (sizes, paths). With `_partial_: true` the
    answer is a `functools.partial`, called later with what only its user knows (the
    LightningModule's parameters, for an optimiser). A value that is itself a node with
    a `_target_` is built first, as Hydra does (trainer.strategy's timeout)."""
    kwargs = OmegaConf.to_container(node) if OmegaConf.is_config(node) else dict(node)
    target = locate(kwargs.pop("_target_"))
    kwargs = {key: _built(value) for key, value in kwargs.items()}
    if kwargs.pop("_partial_", False):
        return functools.partial(target, **kwargs, **injected)
    return target(**kwargs, **injected)


def _built(value: Any) -> Any:
    return instantiate(value) if isinstance(value, dict) and "_target_" in value else value
