"""Config: Hydra 1.3 composes configs/ and the words; Hydra's `instantiate` builds a
node. Around Hydra, only what it lacks: the file or word each value came from, which
errors name (`_sources`); `group=null` and `a.b=value` adding a key (`_overrides`); a
key of an option packaged under its own name (`_to_option`); and an option picked on
the command line keeps its own values (`_yield_to_picked`, `_new_targets`)."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from litlab.errors import ConfigError
from litlab.signatures import importable

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
    tags: list[str]  # words to find the run by (tags=[baseline,cpu]): in the hyperparameters


@dataclasses.dataclass
class SourcedConfig:
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
    part * total (at least 1), so the run validates at its last epoch; None as `fraction`."""
    if not _is_length(total):
        return None
    limit = max(1, int(float(part) * total))
    return max(d for d in range(1, limit + 1) if total % d == 0)


def _is_length(total: Any) -> bool:
    return isinstance(total, int) and not isinstance(total, bool) and total >= 1


OmegaConf.register_new_resolver("fraction", fraction, replace=True)
OmegaConf.register_new_resolver("every", every, replace=True)


# --------------------------------------------------------------------------- compose


def config_dirs() -> list[Path]:
    """Where options are looked for, in Hydra's order: the shipped configs/ (the primary
    config's folder), then the working directory's `configs/` (Hydra's search path)."""
    user = USER_CONFIG_DIR.resolve()
    return [CONFIG_DIR, user] if user.is_dir() and user != CONFIG_DIR else [CONFIG_DIR]


def _refuse_shadowed(dirs: list[Path]) -> None:
    """An option of the user's with a shipped option's name would never be read (Hydra
    takes the first in its search path): refused in one line, rather than ignored."""
    if len(dirs) < 2:
        return
    for path in sorted(dirs[1].glob("*/*.yaml")):
        shipped = dirs[0] / path.parent.name / path.name
        if shipped.is_file():
            option = f"{path.parent.name}={path.stem}"
            raise ConfigError(
                [
                    f"{_rel(path, dirs[0])}: has the name of litlab's {option}, which Hydra "
                    f"reads first; give yours a name of its own ({path.parent.name}/"
                    f"{path.stem}_mine.yaml is {path.parent.name}={path.stem}_mine)"
                ]
            )


def groups() -> dict[str, list[str]]:
    """Every config group and its options, as found on disk."""
    found: dict[str, set[str]] = {}
    for root in config_dirs():
        for d in (d for d in root.iterdir() if d.is_dir()):
            found.setdefault(d.name, set()).update(p.stem for p in d.glob("*.yaml"))
    return {group: sorted(found[group]) for group in sorted(found)}


def compose(words: list[str]) -> SourcedConfig:
    """The resolved config that Hydra composes from `train.yaml` and the user's words
    (a resumed run's is read by rundirs.compose)."""
    words = list(words)
    picked, dotted = parse_words(words)
    lists = {g: o for g, o in picked.items() if isinstance(o, list)}  # Hydra keeps none
    dotted = _to_option(picked, dotted, lists)
    overrides = _overrides(picked, dotted)
    cfg, choices = _hydra(overrides)
    choices |= lists
    notes, yielded = _yield_to_picked(cfg, choices, picked, overrides)
    notes += _new_targets(cfg, dotted, overrides)
    sources = _sources(cfg, choices, dotted, yielded)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError([f"config cannot be resolved: {_one_line(exc)}"]) from None
    return SourcedConfig(cfg, sources, choices, notes=notes, words=words)


def parse_words(words: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The groups the words pick (`group=option`, a list of options, or None for
    `group=null` and `~group`) and the other words, as they came."""
    options = groups()
    picked: dict[str, Any] = {}
    dotted: list[str] = []
    errors: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        if word.startswith("~") and not eq:  # Hydra's "~a.b": delete key a.b, or a group
            if word[1:] in options:
                picked[word[1:]] = None
            else:
                dotted.append(word)
            continue
        group = key.lstrip("+")
        if not eq or not group:
            errors.append(f"'{word}': expected group=option or key=value")
        elif group not in options:
            dotted.append(word)
        else:
            try:
                picked[group] = _option(group, value, options[group])
            except ConfigError as exc:  # every unknown option at once
                errors += exc.errors
    if errors:
        raise ConfigError(errors)
    return picked, dotted


def _option(group: str, value: str, allowed: list[str]) -> str | list[str] | None:
    """The option(s) `group=value` picks: one, `[a,b]` (several, as Hydra selects them),
    or None for null (the group switched off); an unknown one is refused."""
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
    """Hydra's overrides for the words, read as litlab reads them: `group=null` is
    `~group`, `a.b=value` is `++a.b=value` (the check names an unknown key), and a value
    Hydra's grammar cannot read (`~/data`, a `;`) is quoted text."""
    listed = _primary_groups()
    overrides = []
    for group, option in picked.items():
        if option is None:
            if group in listed and group not in GLOBAL_GROUPS:
                overrides.append(f"~{group}")
            continue
        text = f"[{','.join(option)}]" if isinstance(option, list) else option
        overrides.append(f"{group}={text}" if group in listed else f"+{group}={text}")
    for word in dotted:
        plain = word.startswith("~") or word.startswith("+")
        overrides.append(_readable(word if plain else f"++{word}"))
    return overrides


def _readable(word: str) -> str:
    """`word`, or, when Hydra's grammar cannot read its value, the value quoted as text."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    try:
        parser.parse_overrides([word])
        return word
    except OverrideParseException:
        key, eq, value = word.partition("=")
        if not eq:
            raise ConfigError([f"{word} ({CLI}): not a key=value word"]) from None
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        quoted = f"{key}='{escaped}'"
        try:
            parser.parse_overrides([quoted])
        except OverrideParseException as exc:
            raise ConfigError([f"{word} ({CLI}): {_one_line(exc)}"]) from None
        return quoted


def _to_option(picked: dict[str, Any], dotted: list[str], lists: dict[str, Any]) -> list[str]:
    """The words, with `group.key` read as `group.option.key` where the group's one
    option is packaged under its own name (`# @package logger.mlflow`)."""

    def group_of(word: str) -> str:  # the group a dotted key starts with, or ""
        key = word.partition("=")[0].lstrip("+~")
        return key.partition(".")[0] if "." in key else ""

    named = {group_of(w) for w in dotted} & set(groups())
    own = {group for group in named if _packaged_by_option(group)}
    mine = [w for w in dotted if group_of(w) in own]
    if not mine:
        return dotted
    _, choices = _hydra(_overrides(picked, [w for w in dotted if w not in mine]))
    choices |= lists
    words = []
    for word in dotted:
        key, eq, value = word.partition("=")
        sign = key[: len(key) - len(key.lstrip("+~"))]
        group, _, rest = key[len(sign) :].partition(".")
        option = choices.get(group)
        if word in mine and isinstance(option, str) and rest.partition(".")[0] != option:
            word = f"{sign}{group}.{option}.{rest}{eq}{value}"
        words.append(word)
    return words


def _packaged_by_option(group: str) -> bool:
    """Whether every option of the group with keys is packaged as `# @package
    <group>.<option>`, so that several can be picked at once (logger)."""
    paths = [_option_path(group, option) for option in groups()[group]]
    paths = [path for path in paths if _has_keys(path)]
    return bool(paths) and all(_package(path) == f"{group}.{path.stem}" for path in paths)


def _has_keys(path: Path) -> bool:
    lines = path.read_text(encoding="utf-8").splitlines()
    return any(line.strip() and not line.lstrip().startswith("#") for line in lines)


@functools.cache
def _primary_groups() -> frozenset[str]:
    """The groups train.yaml's defaults list names (others are added with `+`)."""
    entries = OmegaConf.load(CONFIG_DIR / "train.yaml").get("defaults", [])
    return frozenset(
        str(next(iter(e))) for e in entries if isinstance(e, DictConfig) and len(e) == 1
    )


def _hydra(overrides: list[str]) -> tuple[DictConfig, dict[str, Any]]:
    """Hydra's composition of train.yaml with `overrides` over the search path: the
    config, unresolved and not struct, and the option picked in each group."""
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
    mine = {g: v for g, v in choices.items() if "/" not in g}
    return _in_order(cfg), mine


def _composition_error(message: str, overrides: list[str]) -> str:
    """Hydra's error, naming the word it is about (Hydra names the key)."""
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~")
        if f"'{key}'" not in message:
            continue
        word = override.removeprefix("++")
        if message.startswith("Could not delete from config."):
            return f"{word} ({CLI}): there is no key {key} to delete"
        return f"{word} ({CLI}): {message}"
    return f"{' '.join(o.removeprefix('++') for o in overrides)} ({CLI}): {message}"


def _in_order(cfg: DictConfig) -> DictConfig:
    """The run's keys first, then the groups in the lesson's order, then any others; a
    group whose option is empty (scheduler=none) or that was switched off is null."""
    first = [f.name for f in dataclasses.fields(RunConfig)]
    order = [*first, "data", "model", "module", "optimizer", "scheduler", "trainer"]
    plain = OmegaConf.to_container(cfg, resolve=False)  # interpolations stay as text
    switchable = [g for g in groups() if g not in (*GLOBAL_GROUPS, SEARCH_GROUP)]
    keys = dict.fromkeys([*order, *plain, *switchable])
    ordered = {key: plain.get(key) for key in keys if key in plain or key in switchable}
    return OmegaConf.create({key: None if value == {} else value for key, value in ordered.items()})


def _yield_to_picked(
    cfg: DictConfig, choices: dict[str, Any], picked: dict[str, Any], overrides: list[str]
) -> tuple[list[str], set[str]]:
    """Leave out the experiment's keys for a group whose option the command line
    changed (Adam's lr is no rate for SGD); one note each, and the groups changed so."""
    experiment = choices.get("experiment")
    if not experiment:
        return [], set()
    path = _option_path("experiment", experiment)
    body = OmegaConf.load(path)
    own = _file_choices(body)
    clashes = [
        g
        for g, option in picked.items()
        if (g in own and own[g] != option) or (option is None and body.get(g) is not None)
    ]
    if not clashes:
        return [], set()
    base, _ = _hydra([o for o in overrides if not o.startswith(("experiment=", "+experiment="))])
    notes, yielded = [], set()
    for group in clashes:
        option = picked[group]
        if group == "data" and body.get("name") is not None:  # the experiment names its data
            notes.append(
                f"data={option} ({CLI}): runs go to runs/{option}, not to "
                f"experiment={experiment}'s name={body.name}"
            )
            cfg.name = base.name
        if body.get(group) is None:
            continue
        keys = ", ".join(f"{group}.{k}" for k in leaf_keys(body[group]))
        if option is None:
            notes.append(
                f"{group}=null ({CLI}) switches the group off: experiment={experiment}'s "
                f"{keys} left out"
            )
        else:
            notes.append(
                f"{group}={option} ({CLI}) keeps its own values: experiment={experiment}'s "
                f"{keys} (meant for {group}={own[group]}) left out; set them on the command "
                "line to keep them"
            )
        cfg[group] = base[group]
        yielded.add(group)
    return notes, yielded


def _file_choices(body: DictConfig) -> dict[str, str]:
    """The options a config file's defaults list picks in other groups: `override
    /group: option` (or `/group@_global_.group`)."""
    found = {}
    for entry in body.get("defaults", []):
        if isinstance(entry, DictConfig) and len(entry) == 1:
            ((key, option),) = entry.items()
            group = str(key).removeprefix("override").strip().lstrip("/").partition("@")[0]
            found[group] = option
    return found


def _new_targets(cfg: DictConfig, dotted: list[str], overrides: list[str]) -> list[str]:
    """A `_target_` changed on the command line drops the files' keys of that node
    (arguments of the old class) but KEPT_ON_NEW_TARGET and the command line's; one note."""
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
            f"{path}.{name}"
            for name in [str(k) for k in node]
            if name not in (*KEPT_ON_NEW_TARGET, "_target_") and f"{path}.{name}" not in set_here
        ]
        for name in dropped:
            del node[name.rpartition(".")[2]]
        if dropped:
            notes.append(
                f"{word} ({CLI}): {', '.join(dropped)} of {old} left out (set them again if "
                f"{new} takes them)"
            )
    return notes


# --------------------------------------------------------------------------- sources


def _sources(
    cfg: DictConfig, choices: dict[str, Any], dotted: list[str], yielded: set[str]
) -> dict[str, str]:
    """The file (or the command line) that set each value of `cfg`, which Hydra cannot
    say: the files in Hydra's order of merging, then the words."""
    layers: list[tuple[Any, str]] = []
    for group, option in choices.items():
        if option is None or group in GLOBAL_GROUPS:
            continue
        for name in option if isinstance(option, list) else [option]:
            layers += _option_chain(group, str(name))
    layers.append((_content(CONFIG_DIR / "train.yaml")[0], PRIMARY))
    for group in GLOBAL_GROUPS:
        if choices.get(group):
            path = _option_path(group, choices[group])
            body = _content(path)[0]
            for name in yielded:
                body.pop(name, None)
            layers.append((body, _rel(path, CONFIG_DIR)))
    present = set(leaf_keys(cfg))
    sources: dict[str, str] = {}
    for node, source in layers:
        for key in leaf_keys(node):
            if key in present:
                sources[key] = source
    for word in dotted:
        key = word.partition("=")[0].lstrip("+~")
        for leaf in [k for k in present if k == key or k.startswith(key + ".")]:
            sources[leaf] = CLI
    return sources


def _option_chain(group: str, option: str) -> list[tuple[dict[str, Any], str]]:
    """The option's file under its package, preceded by the options of its own group it
    starts from (`defaults: [default]` in trainer/gpu.yaml)."""
    path = _option_path(group, option)
    content, defaults = _content(path)
    bases = [e for e in defaults if isinstance(e, str) and e != "_self_"]
    chain = [layer for base in bases for layer in _option_chain(group, base)]
    package = _package(path) or group
    node = content if package == "_global_" else _nested(package, content)
    return [*chain, (node, _rel(path, CONFIG_DIR))]


def _content(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """A config file's keys (read by PyYAML: only the keys matter here) and its defaults."""
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body = body if isinstance(body, dict) else {}
    return body, body.pop("defaults", None) or []


def _package(path: Path) -> str | None:
    """The `# @package X` a file starts with (Hydra reads it there), if any."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        match = re.match(r"^\s*#\s*@package\s+(\S+)", line)
        return match.group(1) if match else None
    return None


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def _option_path(group: str, option: str) -> Path:
    """The file of `group=option`, where Hydra finds it (config_dirs)."""
    for path in (root / group / f"{option}.yaml" for root in config_dirs()):
        if path.is_file():
            return path
    allowed = ", ".join(groups().get(group, []))
    raise ConfigError([f"{group}={option}: no such option; choose one of: {allowed}"])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def stored_config(
    config: dict[str, Any], choices: dict[str, Any], source: str, trust: bool
) -> SourcedConfig:
    """A config read back from a checkpoint (checked as plain data by load_checkpoint):
    every value comes from `source`, whose targets are checked unless `trust`."""
    cfg = OmegaConf.create(config)
    sources = dict.fromkeys(leaf_keys(cfg), source)
    return SourcedConfig(cfg, sources, choices, untrusted=() if trust else (source,))


def _rel(path: Path, config_dir: Path) -> str:
    """A shipped file as `configs/...`; a user's as `./configs/...` (or its full path)."""
    if path.is_relative_to(config_dir):
        return str(path.relative_to(config_dir.parent))
    cwd = Path.cwd().resolve()
    return f"./{path.relative_to(cwd)}" if path.is_relative_to(cwd) else str(path)


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value in a plain nested dict."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    if not isinstance(node, dict) or not node:
        return [prefix] if prefix else []
    return [leaf for k, v in node.items() for leaf in leaf_keys(v, f"{prefix}.{k}".lstrip("."))]


# --------------------------------------------------------------------------- instantiate


def instantiate(node: DictConfig | dict[str, Any], /, **injected: Any) -> Any:
    """Hydra's instantiate, `node._target_(**node, **injected)` with plain containers:
    the caller injects what is known only at run time; a `_partial_` node gives a partial.
    A user's module in the working directory is importable (signatures.importable)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    importable()
    try:
        return hydra_instantiate(node, **injected, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, Exception):
            raise cause from None  # the class's own error about its arguments
        raise ConfigError([_one_line(exc)]) from None
