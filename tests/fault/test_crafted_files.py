"""Crafted stored configs and checkpoints, as a stranger could send them, through every
entry point that reads one: `litlab eval`, `litlab predict`, `Predictor.from_checkpoint`
and `resume=` (which sweeps and searches use to go on). Each ends in one line and exit 2,
within 60 s, runs nothing, and changes nothing outside the folder it was given."""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from litlab.cli import main
from litlab.config import ConfigError, compose
from litlab.predict import Predictor
from litlab.train import run

pytestmark = pytest.mark.usefixtures("bounded")
SEED = 21
BOUND_S = 60  # a crafted file is refused long before this; a resolver loop is not


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny finished circles run, and a victim file beside it."""
    home = tmp_path_factory.mktemp("crafted")
    words = [
        f"runs_dir={home / 'runs'}",
        "trainer.max_epochs=2",
        "trainer.check_val_every_n_epoch=1",
    ]
    run_dir, _ = run(compose([*words, "logger=none", "callbacks.dashboard=null"]))
    (home / "victim").write_text("precious\n")
    return run_dir


def config_payloads(marker: Path) -> dict[str, Callable[[dict[str, Any], random.Random], None]]:
    """name -> a change to a stored config (a plain dict), each of which would run code,
    leak the environment, loop, allocate without end, or build what it should not."""

    def at(path: str, value: Any) -> Callable[[dict[str, Any], random.Random], None]:
        def put(config: dict[str, Any], _rng: random.Random) -> None:
            *parents, last = path.split(".")
            node = config
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value

        return put

    def anywhere(value: Any) -> Callable[[dict[str, Any], random.Random], None]:
        """`value` at a key picked by the seeded generator, in any node."""

        def put(config: dict[str, Any], rng: random.Random) -> None:
            group = rng.choice(["data", "model", "optimizer", "trainer"])
            key = rng.choice(sorted(k for k in config[group] if k != "_target_"))
            config[group][key] = value

        return put

    def target(name: str, /, **kwargs: Any) -> Callable[[dict[str, Any], random.Random], None]:
        def put(config: dict[str, Any], rng: random.Random) -> None:
            group = rng.choice(["data", "model", "module"])
            config[group] = {"_target_": name, **kwargs}

        return put

    def interpolated_target(config: dict[str, Any], _rng: random.Random) -> None:
        config["evil"] = {"_target_": "os.system", "command": f"touch {marker}"}
        config["data"] = "${evil}"

    def deep(config: dict[str, Any], _rng: random.Random) -> None:
        node = config["data"]
        for _ in range(200):
            node["x"] = {}
            node = node["x"]

    return {
        "interpolated _target_": interpolated_target,
        "interpolation of a target": at("model._target_", "${oc.env:LITLAB_EVIL}"),
        "oc.env leaks the environment": anywhere("${oc.env:HOME}"),
        "every: an endless loop": at("trainer.check_val_every_n_epoch", "${every:0.5,99999999999}"),
        "fraction of a huge run": at(
            "callbacks.dashboard", {"every_n_epochs": "${fraction:1,9e18}"}
        ),
        "oc.create": anywhere(
            "${oc.create:{_target_: os.system, command: touch " + str(marker) + "}}"
        ),
        "escaped interpolation": anywhere("\\${oc.env:HOME}"),
        "interpolation in a list": at("model.hidden", [8, "${oc.env:HOME}"]),
        "os.system": target("os.system", command=f"touch {marker}"),
        "builtins.eval": target("builtins.eval", source=f"open({str(marker)!r},'w')"),
        "subprocess.Popen": target("subprocess.Popen", args=["touch", str(marker)]),
        "litlab function": target("litlab.signatures.locate", dotted="os.system"),
        "litlab.__main__": target("litlab.__main__.command"),
        "borrowed Path": target("litlab.builders.Path", args=str(marker)),
        "borrowed SVC": target("litlab.baselines.SVC"),
        "borrowed EventAccumulator": target("litlab.compare.EventAccumulator", path=str(marker)),
        "a private class": target("litlab.module._Supervised", folder=str(marker.parent)),
        "nested target": at(
            "data.n_samples", {"_target_": "os.system", "command": f"touch {marker}"}
        ),
        "size bomb": at("data.padding", ["x" * 1000] * 2000),
        "depth bomb": deep,
        "a key that is not text": at("data", {1: 2, "_target_": "litlab.data.CirclesDataModule"}),
    }


def checkpoint_payloads() -> dict[str, Callable[[dict[str, Any], random.Random], None]]:
    """name -> a change to a whole checkpoint: its layout or its weights."""

    def weight(value: float) -> Callable[[dict[str, Any], random.Random], None]:
        def put(checkpoint: dict[str, Any], rng: random.Random) -> None:
            key = rng.choice(sorted(checkpoint["state_dict"]))
            tensor = checkpoint["state_dict"][key].clone()
            tensor.view(-1)[rng.randrange(tensor.numel())] = value
            checkpoint["state_dict"][key] = tensor

        return put

    def reshaped(checkpoint: dict[str, Any], rng: random.Random) -> None:
        key = rng.choice(sorted(checkpoint["state_dict"]))
        checkpoint["state_dict"][key] = torch.zeros(*checkpoint["state_dict"][key].shape, 3)

    def renamed(checkpoint: dict[str, Any], rng: random.Random) -> None:
        key = rng.choice(sorted(checkpoint["state_dict"]))
        checkpoint["state_dict"]["net.other"] = checkpoint["state_dict"].pop(key)

    def no_epoch(checkpoint: dict[str, Any], _rng: random.Random) -> None:
        del checkpoint["epoch"]

    def list_config(checkpoint: dict[str, Any], _rng: random.Random) -> None:
        checkpoint["litlab"]["config"] = [1, 2, 3]

    def tensor_in_config(checkpoint: dict[str, Any], _rng: random.Random) -> None:
        checkpoint["litlab"]["config"]["seed"] = torch.zeros(3)

    return {
        "NaN weight": weight(float("nan")),
        "inf weight": weight(float("inf")),
        "wrong shape": reshaped,
        "other weight names": renamed,
        "missing epoch": no_epoch,
        "config that is a list": list_config,
        "tensor in the config": tensor_in_config,
    }


YAML_FILES = {  # config.yaml texts of a run folder: resume= reads them
    "YAML syntax error": "data: {_target_: [unclosed\n",
    "YAML python tag": "data: !!python/object/apply:os.system ['touch {marker}']\n",
    "YAML list": "- data\n- model\n",
    "YAML billion laughs": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    ),
    "checkpoint dirpath outside the run": "",  # set below, from the run's own config
    "logger save_dir outside the run": "",
}


@pytest.fixture
def bounded() -> Iterator[None]:
    """Fail a case that takes over BOUND_S (a loop in a resolver would run for ever)."""

    def late(*_: object) -> None:
        raise TimeoutError(f"not refused within {BOUND_S} s")

    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(BOUND_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def crafted_checkpoint(
    trained: Path, folder: Path, change: Callable, rng: random.Random, *, whole: bool
) -> Path:
    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    change(checkpoint if whole else checkpoint["litlab"]["config"], rng)
    path = folder / "stranger.ckpt"
    torch.save(checkpoint, path)
    return path


def refused_by_the_cli(argv: list[str], capsys) -> str:
    """The one error line of a `litlab` command that must exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    header, *errors = err.strip().splitlines()
    assert header == "litlab: bad config:" and len(errors) == 1, err
    return errors[0]


def assert_nothing_ran(home: Path, marker: Path, before: dict[str, str]) -> None:
    assert not marker.exists()
    assert fingerprint(home) == before  # the trained run and the victim, byte for byte


def through_the_checkpoint_entry_points(ckpt: Path, folder: Path, capsys) -> list[str]:
    rows = folder / "rows.csv"
    rows.write_text("x1,x2\n0.1,0.2\n")
    lines = [
        refused_by_the_cli(["eval", str(ckpt)], capsys),
        refused_by_the_cli(["predict", str(ckpt), str(rows), str(folder / "out.csv")], capsys),
    ]
    with pytest.raises(ConfigError) as info:
        Predictor.from_checkpoint(ckpt)
    (error,) = info.value.errors
    lines.append(error)
    assert not (folder / "out.csv").exists() and not ckpt.with_suffix(".eval.json").exists()
    return lines


def resume_refuses(run_dir: Path, capsys) -> str:
    return refused_by_the_cli(["train", f"resume={run_dir}", "trainer.max_epochs=4"], capsys)


@pytest.mark.parametrize("name", list(config_payloads(Path("m"))))
def test_a_crafted_stored_config_is_refused_everywhere(trained, tmp_path, name, capsys):
    rng, marker, home = random.Random(f"{SEED}/{name}"), tmp_path / "marker", trained.parents[2]
    before = fingerprint(home)
    change = config_payloads(marker)[name]
    ckpt = crafted_checkpoint(trained, tmp_path, change, rng, whole=False)
    lines = through_the_checkpoint_entry_points(ckpt, tmp_path, capsys)
    assert all(str(ckpt) in line for line in lines), lines

    copy = tmp_path / "copy"  # the same payload in a run folder's config.yaml
    shutil.copytree(trained, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    change(config, random.Random(f"{SEED}/{name}"))
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    assert f"{copy / 'config.yaml'}" in resume_refuses(copy, capsys)
    assert_nothing_ran(home, marker, before)


@pytest.mark.parametrize("name", list(checkpoint_payloads()))
def test_a_crafted_checkpoint_is_refused_everywhere(trained, tmp_path, name, capsys):
    rng, home = random.Random(f"{SEED}/{name}"), trained.parents[2]
    before = fingerprint(home)
    change = checkpoint_payloads()[name]
    ckpt = crafted_checkpoint(trained, tmp_path, change, rng, whole=True)
    lines = through_the_checkpoint_entry_points(ckpt, tmp_path, capsys)
    assert all(str(ckpt) in line for line in lines), lines

    copy = tmp_path / "copy"  # the same checkpoint as a run folder's last.ckpt
    shutil.copytree(trained, copy)
    shutil.copy(ckpt, copy / "checkpoints" / "last.ckpt")
    line = resume_refuses(copy, capsys)
    assert str(copy / "checkpoints" / "last.ckpt") in line
    assert_nothing_ran(home, tmp_path / "marker", before)


def test_a_compressed_checkpoint_is_refused_before_it_is_inflated(trained, tmp_path, capsys):
    """torch.save stores zip entries as they are; a deflated entry could make a small
    file unpack into gigabytes, so it is refused before anything is read."""
    home = trained.parents[2]
    before = fingerprint(home)
    ckpt = tmp_path / "deflated.ckpt"
    with (
        zipfile.ZipFile(trained / "checkpoints" / "last.ckpt") as plain,
        zipfile.ZipFile(ckpt, "w", zipfile.ZIP_DEFLATED) as squeezed,
    ):
        for info in plain.infolist():
            squeezed.writestr(info.filename, plain.read(info))
    lines = through_the_checkpoint_entry_points(ckpt, tmp_path, capsys)
    assert all("is compressed" in line for line in lines), lines
    assert_nothing_ran(home, tmp_path / "marker", before)


@pytest.mark.parametrize("name", list(YAML_FILES))
def test_a_crafted_config_yaml_is_refused_by_resume(trained, tmp_path, name, capsys):
    home, marker = trained.parents[2], tmp_path / "marker"
    before = fingerprint(home)
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    text = YAML_FILES[name].replace("{marker}", str(marker))
    if not text:  # a path setting that leaves the run folder: another run's checkpoints
        config = yaml.safe_load((copy / "config.yaml").read_text())
        if "dirpath" in name:
            config["callbacks"]["checkpoint"]["dirpath"] = str(trained / "checkpoints")
        else:
            logger = "lightning.pytorch.loggers.TensorBoardLogger"
            config["logger"] = {"_target_": logger, "save_dir": str(home)}
        text = yaml.safe_dump(config)
    (copy / "config.yaml").write_text(text)
    assert str(copy / "config.yaml") in resume_refuses(copy, capsys)
    assert_nothing_ran(home, marker, before)


def test_a_link_inside_a_run_folder_is_refused_by_resume(trained, tmp_path, capsys):
    """resume= writes into the folder again: a link there (to another run's checkpoint,
    or anywhere) would be written through."""
    home = trained.parents[2]
    before = fingerprint(home)
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "hparams.yaml").symlink_to(home / "victim")
    line = resume_refuses(copy, capsys)
    assert line == (
        f"  {copy / 'hparams.yaml'}: a link inside run folder {copy}; litlab never writes "
        "through a link: remove it, or copy the run without links"
    )
    assert_nothing_ran(home, tmp_path / "marker", before)


def test_there_are_at_least_twenty_crafted_files():
    names = [*config_payloads(Path("m")), *checkpoint_payloads(), *YAML_FILES, "deflated"]
    assert len(names) >= 20
