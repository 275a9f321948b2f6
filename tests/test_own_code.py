"""Your own model and data module: the examples of the README and the docs pages run
exactly as written from a folder of their own, and a class that breaks the contract is
named in one line before anything runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from litlab.check import check
from litlab.config import ConfigError, compose
from litlab.signatures import _cache, signature

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
YOUR_CODE = ROOT / "docs" / "your-code.md"  # the worked examples, checked in detail below
# The console script, not `python -m litlab`: -m would put the folder on sys.path itself.
LITLAB = str(Path(sys.executable).parent / "litlab")
HEADING = re.compile(r"^#{2,3} (.+)$", re.M)


def sections(page: Path) -> dict[str, str]:
    """Each `##` or `###` section of the page by its title, up to the next such heading."""
    text = page.read_text()
    heads = list(HEADING.finditer(text))
    ends = [*(head.start() for head in heads), len(text)][1:]
    return {head.group(1): text[head.start() : end] for head, end in zip(heads, ends, strict=True)}


def blocks(section: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block."""
    return re.findall(r"^```([^\n]*)\n(.*?)^```$", section, re.M | re.S)


def runs_commands(section: str) -> bool:
    return any(info.strip() == "sh run" for info, _ in blocks(section))


def run_section(
    title: str, folder: Path, page: Path = YOUR_CODE
) -> list[subprocess.CompletedProcess]:
    """Write the section's files into `folder`, then run its commands there."""
    results = []
    for info, body in blocks(sections(page)[title]):
        if " file=" in info:
            path = folder / info.split("file=")[1].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif info.strip() == "sh run":
            for line in body.strip().splitlines():
                assert line.startswith("litlab "), line
                words = line.split()[1:]
                results.append(
                    subprocess.run(
                        [LITLAB, *words], cwd=folder, capture_output=True, text=True, timeout=600
                    )
                )
    assert results, f"{page.name}: section {title!r} runs no command"
    return results


def finished_runs(folder: Path) -> list[Path]:
    found = [p.parent for p in folder.glob("*/metrics.json")]
    return [
        p for p in found if json.loads((p / "metrics.json").read_text())["status"] == "finished"
    ]


@pytest.mark.slow
def test_own_model_example_runs_as_written_and_evaluates(tmp_path):
    first, second = run_section("Your own model", tmp_path)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    # the command-line _target_ dropped the MLP's keys, and said so in one line
    (note,) = [line for line in second.stderr.splitlines() if "model._target_=" in line]
    assert "model.hidden, model.activation" in note
    runs = finished_runs(tmp_path / "runs" / "circles")
    assert len(runs) == 2
    stored = [(r / "config.yaml").read_text() for r in runs]
    assert all("mymodels.ResMLP" in s and "hidden" not in s for s in stored)
    # eval rebuilds the user's class from the checkpoint, from the same folder
    best = sorted(runs)[0] / "checkpoints" / "best.ckpt"
    evaluated = subprocess.run(
        [LITLAB, "eval", str(best)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((sorted(runs)[0] / "metrics.json").read_text())
    assert json.loads(best.with_suffix(".eval.json").read_text())["test/acc"] == pytest.approx(
        metrics["test/acc"]
    )


@pytest.mark.slow
def test_own_data_module_example_runs_as_written(tmp_path):
    (result,) = run_section("Your own data module", tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = finished_runs(tmp_path / "runs" / "moons")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.8  # moons at noise 0.2 are nearly separable


CHECKED = {(YOUR_CODE, "Your own model"), (YOUR_CODE, "Your own data module")}
OTHERS = [
    (page, title)
    for page in PAGES
    for title, text in sections(page).items()
    if runs_commands(text) and (page, title) not in CHECKED
]


def test_every_section_that_runs_commands_is_run():
    assert all(runs_commands(sections(page)[title]) for page, title in CHECKED)
    assert (ROOT / "README.md", "Your own model") in OTHERS  # the landing page's example


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "title"), OTHERS, ids=[f"{p.relative_to(ROOT)}: {t}" for p, t in OTHERS]
)
def test_every_other_example_runs_as_written(page, title, tmp_path):
    results = run_section(title, tmp_path, page)
    for result in results:
        assert result.returncode == 0, f"{result.args}\n{result.stderr[-2000:]}"
    metrics = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/*/metrics.json")]
    assert [m["status"] for m in metrics] == ["finished"] * len(results)


def write_module(folder: Path, name: str, source: str) -> str:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def test_a_network_without_the_data_sizes_is_named_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = write_module(
        tmp_path,
        "nosizes_models",
        """
        from torch import nn
        class Net(nn.Module):
            def __init__(self, in_features: int, width: int = 8):
                super().__init__()
        """,
    )
    with pytest.raises(ConfigError) as info:
        check(compose([f"model._target_={name}.Net"]), build=False)
    assert info.value.errors == [
        f"model._target_={name}.Net (the command line): a network must take the keyword "
        "arguments in_features and out_features (the data's sizes); it lacks out_features"
    ]


def test_user_classes_are_not_kept_in_the_signature_cache(tmp_path, monkeypatch):
    """A user's file changes between runs; litlab's cache stamp would not see it."""
    monkeypatch.chdir(tmp_path)
    name = write_module(
        tmp_path,
        "uncached_models",
        """
        class Net:
            def __init__(self, in_features: int, out_features: int, depth: int = 2):
                pass
        """,
    )
    assert "depth" in signature(f"{name}.Net").params
    assert f"{name}.Net" not in _cache()


PLAIN = """
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def loader(n):
        x = torch.randn(n, 3)
        return DataLoader(TensorDataset(x, (x.sum(1, keepdim=True) > 0).float()), batch_size=16)

    class Bare(L.LightningDataModule):
        def __init__(self, n: int = 64):
            super().__init__()

    class Loaders(L.LightningDataModule):
        task = "binary"
        num_features = 3

        def __init__(self, n: int = 64):
            super().__init__()
            self.n = n

        def train_dataloader(self):
            return loader(self.n)

        def val_dataloader(self):
            return loader(16)

        def test_dataloader(self):
            return loader(16)
    """


def test_a_plain_data_module_is_told_what_it_lacks(tmp_path, monkeypatch, make_config):
    from litlab.builders import build_data

    monkeypatch.chdir(tmp_path)
    name = write_module(tmp_path, "plain_data_a", PLAIN)
    composed = check(make_config(f"data._target_={name}.Bare"), build=False)
    with pytest.raises(ConfigError) as info:
        build_data(composed)
    assert info.value.errors == [
        "data (the command line, Bare): a data module must provide task, num_features, "
        "train_dataloader(), test_dataloader() (see litlab.data.base.TensorDataModule)"
    ]


@pytest.mark.slow
def test_a_plain_data_module_with_loaders_trains(tmp_path, monkeypatch, make_config):
    from litlab.train import train

    monkeypatch.chdir(tmp_path)
    name = write_module(tmp_path, "plain_data_b", PLAIN)
    words = [f"data._target_={name}.Loaders", "trainer.max_epochs=4", "name=plain"]
    run_dir, metrics = train(make_config(*words))
    assert metrics["status"] == "finished" and 0 <= metrics["test/acc"] <= 1
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()


def test_a_new_target_drops_the_old_class_keys_but_the_command_lines(make_config):
    composed = make_config("model._target_=litlab.model.CNN", "model.channels=[4]")
    assert dict(composed.cfg.model) == {"_target_": "litlab.model.CNN", "channels": [4]}
    (note,) = composed.notes
    assert note.startswith("model._target_=litlab.model.CNN (the command line): model.hidden, ")
    # how a node is built stays: an optimiser is still a partial
    optimizer = make_config("optimizer._target_=torch.optim.Adagrad").cfg.optimizer
    assert dict(optimizer) == {"_target_": "torch.optim.Adagrad", "_partial_": True}
    # the same class again keeps the file's keys
    same = make_config("model._target_=litlab.model.MLP").cfg.model
    assert same.hidden == [16, 16] and not make_config("model._target_=litlab.model.MLP").notes
