"""Hydra 1.3 composes configs/ and the words; Hydra's `instantiate` builds a node. Around
Hydra, only what it lacks: the file or word each value came from, for errors; `group=null`
and `a.b=value` adding a key; a key of the one option picked in a group packaged by option
(`logger.tracking_uri`); an option or `_target_` picked on the command line keeps its own
values, not an experiment's."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from litlab.errors import ConfigError
from litlab.signatures import importable

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
USER_CONFIG_DIR = Path("configs")  # options of the user's own, on Hydra's search path
# Kept when the command line names another `_target_`: how it is built, not its arguments.
KEPT_ON_NEW_TARGET = ("_target_", "_partial_", "lightning")
GLOBAL_GROUPS = ("experiment", "debug")  # merged at the top level: they change several groups
SEARCH_GROUP = "search"  # read by `litlab search`, never part of a run's config
CLI = "the command line"
PRIMARY = "configs/train.yaml"


@dataclasses.dataclass
class RunConfig:
    """The top-level keys that are not groups."""

    name: str | None  # runs go to <runs_dir>/<name>/<timestamp>/; None: the data option
    runs_dir: str
    seed: int
    resume: str | None  # a run folder to continue from its checkpoints/last.ckpt
    tags: list[str]  # words to find the run by: in the hyperparameters


@dataclasses.dataclass
class SourcedConfig:
    cfg: DictConfig
    sources: dict[str, str]  # dotted key -> the file or the command line that set it
    choices: dict[str, Any]  # group -> the option(s) picked
    checked: bool = False  # set by check.check: a command checks its config once
    notes: list[str] = dataclasses.field(default_factory=list)  # told once, before the run
    words: list[str] = dataclasses.field(default_factory=list)  # the command line's words
    # Files that may come from someone else (a checkpoint, a run's config.yaml): a _target_
    # they set must be one trust.allowed_target accepts.
    untrusted: tuple[str, ...] = ()

    def source(self, key: str) -> str:
        """Where `key` came from: every source under it, or its nearest parent's."""
        under = [s for k, s in self.sources.items() if k == key or k.startswith(key + ".")]
        if under:
            return " + ".join(dict.fromkeys(under))
        parent = key.rpartition(".")[0]
        return self.source(parent) if parent else CLI


# OmegaConf has no arithmetic: these let a config say "a quarter of the run".
def fraction(part: float, total: Any) -> int | None:
    """`${fraction:0.25,${trainer.max_epochs}}`: round(part * total), at least 1."""
    return max(1, round(float(part) * total)) if _is_length(total) else None


def every(part: float, total: Any) -> int | None:
    """The largest divisor of `total` up to part * total: the run validates at its end."""
    if not _is_length(total):
        return None
    return max(d for d in range(1, max(1, int(float(part) * total)) + 1) if total % d == 0)


def _is_length(total: Any) -> bool:
    return isinstance(total, int) and not isinstance(total, bool) and total >= 1


OmegaConf.register_new_resolver("fraction", fraction, replace=True)
OmegaConf.register_new_resolver("every", every, replace=True)


def config_dirs() -> list[Path]:
    """Where options are looked for, in Hydra's order: configs/, then ./configs/."""
    user = USER_CONFIG_DIR.resolve()
    return [CONFIG_DIR, user] if user.is_dir() and user != CONFIG_DIR else [CONFIG_DIR]


def groups() -> dict[str, list[str]]:
    """Every config group and its options, as found on disk."""
    found: dict[str, set[str]] = {}
    for root in config_dirs():
        for d in (d for d in root.iterdir() if d.is_dir()):
            found.setdefault(d.name, set()).update(p.stem for p in d.glob("*.yaml"))
    return {group: sorted(found[group]) for group in sorted(found)}


def compose(words: list[str]) -> SourcedConfig:
    """The resolved config Hydra composes from train.yaml and the words."""
    picked, dotted = parse_words(words)
    dotted = _to_option(picked, dotted)
    overrides = _overrides(picked, dotted)
    cfg, choices = _hydra(overrides)
    choices |= {g: o for g, o in picked.items() if isinstance(o, list)}  # Hydra records none
    notes, yielded = _yield_to_picked(cfg, choices, picked, overrides)
    notes += _new_targets(cfg, dotted, overrides)
    sources = _sources(cfg, choices, dotted, yielded)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError([f"config cannot be resolved: {_one_line(exc)}"]) from None
    return SourcedConfig(cfg, sources, choices, notes=notes, words=list(words))


def parse_words(words: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The groups the words pick (an option, a list, or None for `group=null` and `~group`)
    and the other words; every unknown option is named at once."""
    options = groups()
    picked: dict[str, Any] = {}
    dotted: list[str] = []
    errors: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        group = key.lstrip("+~")
        if not eq and word.startswith("~"):  # Hydra's `~a.b` deletes a key, `~group` a group
            if group in options:
                picked[group] = None
            else:
                dotted.append(word)
        elif not eq or not group:
            errors.append(f"'{word}': expected group=option or key=value")
        elif group not in options:
            dotted.append(word)
        else:
            try:
                picked[group] = _option(group, value, options[group])
            except ConfigError as exc:
                errors += exc.errors
    if errors:
        raise ConfigError(errors)
    return picked, dotted


def _option(group: str, value: str, allowed: list[str]) -> str | list[str] | None:
    """The option(s) `group=value` picks: one, `[a,b]`, or None (null: switched off)."""
    if value == "null" or (value == "none" and "none" not in allowed):
        return None
    many = value.startswith("[") and value.endswith("]")
    picked = [v.strip() for v in value[1:-1].split(",") if v.strip()] if many else [value]
    unknown = [option for option in picked if option not in allowed]
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(
            [
                f"{group}={value} ({CLI}): no such option{f' {unknown[0]}' if many else ''}; "
                f"choose one of: {', '.join(allowed)}{hint}"
            ]
        )
    return picked if many else picked[0]


def _overrides(picked: dict[str, Any], dotted: list[str]) -> list[str]:
    """Hydra's overrides for the words: `group=null` is `~group`, `a.b=v` is `++a.b=v` (the
    check names an unknown key), and a value Hydra cannot read (`~/data`, `;`) is text."""
    listed = _defaults()
    overrides = []
    for group, option in picked.items():
        if option is None:
            if group in listed and group not in GLOBAL_GROUPS:
                overrides.append(f"~{group}")
            continue
        text = f"[{','.join(option)}]" if isinstance(option, list) else option
        overrides.append(f"{group}={text}" if group in listed else f"+{group}={text}")
    return overrides + [_readable(w if w.startswith(("~", "+")) else f"++{w}") for w in dotted]


def _readable(word: str) -> str:
    """`word`, or its value quoted as text when Hydra's grammar cannot read it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    key, _, value = word.partition("=")
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    for attempt in (word, f"{key}='{escaped}'"):
        try:
            parser.parse_overrides([attempt])
            return attempt
        except OverrideParseException as exc:
            error = exc
    raise ConfigError([f"{word.removeprefix('++')} ({CLI}): {_one_line(error)}"])


def _to_option(picked: dict[str, Any], dotted: list[str]) -> list[str]:
    """The words, `group.key` read as `group.option.key` where the group's options are
    packaged under their own names (`# @package logger.mlflow`) and one is picked."""
    words = []
    for word in dotted:
        key, eq, value = word.partition("=")
        sign = key[: len(key) - len(key.lstrip("+~"))]
        group, _, rest = key[len(sign) :].partition(".")
        option = picked.get(group, _defaults().get(group))
        mine = rest and isinstance(option, str) and rest.partition(".")[0] != option
        if mine and _packaged_by_option(group):
            word = f"{sign}{group}.{option}.{rest}{eq}{value}"
        words.append(word)
    return words


def _packaged_by_option(group: str) -> bool:
    """Whether every option of the group with keys is `# @package <group>.<option>`."""
    paths = [p for p in (_option_path(group, o) for o in groups()[group]) if _content(p)[0]]
    return bool(paths) and all(_package(p) == f"{group}.{p.stem}" for p in paths)


@functools.cache
def _defaults() -> dict[str, Any]:
    """The option train.yaml's defaults list picks in each group it names (others are
    added with `+`)."""
    entries = OmegaConf.load(CONFIG_DIR / "train.yaml").get("defaults", [])
    return {str(k): v for e in entries if isinstance(e, DictConfig) for k, v in e.items()}


def _hydra(overrides: list[str]) -> tuple[DictConfig, dict[str, Any]]:
    """Hydra's composition of train.yaml with `overrides`: the config (unresolved, not
    struct, in order) and the option picked in each group."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    primary, *more = dirs = config_dirs()
    _refuse_shadowed(dirs)
    search = [f"hydra.searchpath=[{','.join(f'file://{d}' for d in more)}]"] if more else []
    try:
        with initialize_config_dir(str(primary), version_base="1.3", job_name="litlab"):
            cfg = hydra_compose("train", overrides=[*overrides, *search], return_hydra_config=True)
    except yaml.YAMLError as exc:  # a file of the user's that is not YAML
        mark = getattr(exc, "problem_mark", None)
        where = mark.name if mark is not None else "a config file"
        raise ConfigError([f"{where}: cannot be read: {_one_line(exc)}"]) from None
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise ConfigError([_composition_error(_one_line(exc), overrides)]) from None
    OmegaConf.set_struct(cfg, False)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    del cfg["hydra"]
    return _in_order(cfg), {g: v for g, v in choices.items() if "/" not in g}


def _refuse_shadowed(dirs: list[Path]) -> None:
    """A user's option with a shipped option's name would never be read: refused."""
    for path in sorted(dirs[1].glob("*/*.yaml")) if len(dirs) > 1 else []:
        if (dirs[0] / path.parent.name / path.name).is_file():
            group, stem = path.parent.name, path.stem
            raise ConfigError(
                [
                    f"{_rel(path)}: has the name of litlab's {group}={stem}, which Hydra reads "
                    f"first; give yours a name of its own ({group}/{stem}_mine.yaml is "
                    f"{group}={stem}_mine)"
                ]
            )


def _composition_error(message: str, overrides: list[str]) -> str:
    """Hydra's error, naming the word it is about."""
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~")
        if f"'{key}'" in message:
            word = override.removeprefix("++")
            if message.startswith("Could not delete from config."):
                return f"{word} ({CLI}): there is no key {key} to delete"
            return f"{word} ({CLI}): {message}"
    return f"{' '.join(o.removeprefix('++') for o in overrides)} ({CLI}): {message}"


def _in_order(cfg: DictConfig) -> DictConfig:
    """The run's keys, then the groups in the lesson's order, then the others; a group
    whose option is empty (scheduler=none) or that was switched off is null."""
    order = [f.name for f in dataclasses.fields(RunConfig)]
    order += ["data", "model", "module", "optimizer", "scheduler", "trainer"]
    plain = OmegaConf.to_container(cfg, resolve=False)  # interpolations stay as text
    switchable = [g for g in groups() if g not in (*GLOBAL_GROUPS, SEARCH_GROUP)]
    keys = [
        k for k in dict.fromkeys([*order, *plain, *switchable]) if k in plain or k in switchable
    ]
    return OmegaConf.create({k: None if plain.get(k) == {} else plain.get(k) for k in keys})


def _yield_to_picked(
    cfg: DictConfig, choices: dict[str, Any], picked: dict[str, Any], overrides: list[str]
) -> tuple[list[str], set[str]]:
    """Leave out the experiment's keys for a group whose option the command line changed
    (Adam's lr is no rate for SGD): a note each, and the groups so changed."""
    experiment = choices.get("experiment")
    if not experiment:
        return [], set()
    body, defaults = _content(_option_path("experiment", experiment))
    own = {}  # the options its defaults list picks: `override /group: option`
    for entry in (e for e in defaults if isinstance(e, dict)):
        ((key, option),) = entry.items()
        own[key.removeprefix("override").strip(" /").partition("@")[0]] = option
    clashes = [
        g
        for g, option in picked.items()
        if (g in own and own[g] != option) or (option is None and body.get(g) is not None)
    ]
    if not clashes:
        return [], set()
    base, _ = _hydra([o for o in overrides if not o.lstrip("+").startswith("experiment=")])
    notes = []
    for group in clashes:
        option, mine = picked[group], f"experiment={experiment}"
        if group == "data" and body.get("name") is not None:  # the experiment names its data
            notes.append(f"data={option} ({CLI}): runs go to runs/{option}, not to {mine}'s name")
            cfg.name = base.name
        if body.get(group) is None:
            continue
        keys = ", ".join(f"{group}.{k}" for k in leaf_keys(body[group]))
        if option is None:
            notes.append(f"{group}=null ({CLI}) switches the group off: {mine}'s {keys} left out")
        else:
            notes.append(
                f"{group}={option} ({CLI}) keeps its own values: {mine}'s {keys} (meant for "
                f"{group}={own[group]}) left out; set them on the command line to keep them"
            )
        cfg[group] = base[group]
    return notes, set(clashes)


def _new_targets(cfg: DictConfig, dotted: list[str], overrides: list[str]) -> list[str]:
    """A `_target_` changed on the command line drops the files' keys of that node (the
    old class's arguments), but KEPT_ON_NEW_TARGET and the command line's; a note."""
    targets = [w for w in dotted if w.partition("=")[0].lstrip("+").endswith("._target_")]
    if not targets:
        return []
    before, _ = _hydra([o for o in overrides if o.lstrip("+") not in targets])
    set_here = {w.partition("=")[0].lstrip("+~") for w in dotted}
    notes = []
    for word in targets:
        key, _, new = word.lstrip("+").partition("=")
        path = key.removesuffix("._target_")
        old, node = OmegaConf.select(before, key), OmegaConf.select(cfg, path)
        if old is None or old == new or not isinstance(node, DictConfig):
            continue
        dropped = [
            f"{path}.{k}"
            for k in node
            if k not in KEPT_ON_NEW_TARGET and f"{path}.{k}" not in set_here
        ]
        for name in dropped:
            del node[name.rpartition(".")[2]]
        if dropped:
            notes.append(
                f"{word} ({CLI}): {', '.join(dropped)} of {old} left out (set them again if "
                f"{new} takes them)"
            )
    return notes


def _sources(
    cfg: DictConfig, choices: dict[str, Any], dotted: list[str], yielded: set[str]
) -> dict[str, str]:
    """The file (or the command line) that set each value, which Hydra cannot say: a group's
    key its option's file, then an experiment's or debug option's keys, then the words."""
    sources = {}
    for key in leaf_keys(cfg):
        group, _, rest = key.partition(".")
        option = choices.get(group)
        if isinstance(option, list):  # several options, each packaged under its name
            option = next((o for o in option if rest.startswith(f"{o}.")), None)
        sources[key] = _rel(_option_path(group, option)) if option and rest else PRIMARY
    for group in (g for g in GLOBAL_GROUPS if choices.get(g)):
        path = _option_path(group, choices[group])
        body = {k: v for k, v in _content(path)[0].items() if k not in yielded}
        sources |= {k: _rel(path) for k in leaf_keys(body) if k in sources}
    for word in dotted:
        key = word.partition("=")[0].lstrip("+~")
        sources |= {k: CLI for k in sources if k == key or k.startswith(key + ".")}
    return sources


def _content(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """A config file's keys (PyYAML: only the keys matter) and its defaults list."""
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body = body if isinstance(body, dict) else {}
    return body, body.pop("defaults", None) or []


def _package(path: Path) -> str | None:
    """The `# @package X` a file starts with, if any."""
    first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line), "")
    return first.split("@package", 1)[1].strip() if "@package" in first else None


def _option_path(group: str, option: str) -> Path:
    """The file of `group=option`, where Hydra finds it."""
    for path in (root / group / f"{option}.yaml" for root in config_dirs()):
        if path.is_file():
            return path
    allowed = ", ".join(groups().get(group, []))
    raise ConfigError([f"{group}={option}: no such option; choose one of: {allowed}"])


def _rel(path: Path) -> str:
    """A shipped file as `configs/...`; a user's as `./configs/...` (or its full path)."""
    if path.is_relative_to(CONFIG_DIR):
        return str(path.relative_to(CONFIG_DIR.parent))
    cwd = Path.cwd().resolve()
    return f"./{path.relative_to(cwd)}" if path.is_relative_to(cwd) else str(path)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def stored_config(
    config: dict[str, Any], choices: dict[str, Any], source: str, trust: bool
) -> SourcedConfig:
    """A config read back from a file: every value comes from `source`, whose targets are
    checked unless `trust`."""
    cfg = OmegaConf.create(config)
    sources = dict.fromkeys(leaf_keys(cfg), source)
    return SourcedConfig(cfg, sources, choices, untrusted=() if trust else (source,))


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value in a nested mapping."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    if not isinstance(node, dict) or not node:
        return [prefix] if prefix else []
    return [leaf for k, v in node.items() for leaf in leaf_keys(v, f"{prefix}.{k}".lstrip("."))]


def instantiate(node: DictConfig | dict[str, Any], /, **injected: Any) -> Any:
    """Hydra's instantiate with plain containers; the caller injects what is known only at
    run time. A module in the working directory is importable."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    importable()
    try:
        return hydra_instantiate(node, **injected, _convert_="all")
    except InstantiationException as exc:
        if isinstance(exc.__cause__, Exception):
            raise exc.__cause__ from None  # the class's own error about its arguments
        raise ConfigError([_one_line(exc)]) from None
