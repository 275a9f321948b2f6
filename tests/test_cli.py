"""The command line: help, printing the config, and clear errors with no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from litlab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def litlab(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "litlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_lists_groups_and_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "optimizer   adam, adamw, momentum, nesterov, rmsprop, sgd" in out
    assert "scheduler   cosine, exponential, multistep, none, plateau, step" in out


def test_cfg_job_shows_the_resolved_config_and_exits(capsys, tmp_path):
    words = [f"runs_dir={tmp_path}/runs", "scheduler=cosine", "trainer.max_epochs=7"]
    code = main(["train", "--cfg", "job", *words])
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert code == 0 and cfg["scheduler"]["total"] == 7
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (
            ["optimizer=adamm"],
            "optimizer=adamm (the command line): no such option; choose one of: adam, adamw",
        ),
        (
            ["optimizer.lrr=0.1"],
            "optimizer.lrr (the command line): unknown key of torch.optim.Adam; did you mean",
        ),
        (
            ["trainer.max_epochs=ten"],
            "trainer.max_epochs='ten' (the command line): expected int >= 1 | null, got str",
        ),
        (["optimizer.lr=-1"], "torch.optim.Adam): Invalid learning rate: -1"),
        (
            ["data.val_fraction=0.6", "data.test_fraction=0.5"],
            "val_fraction=0.6 + test_fraction=0.5 leaves fewer",
        ),
    ],
)
def test_bad_config_is_one_clear_message(capsys, tmp_path, words, message):
    code = main(["train", f"runs_dir={tmp_path}/runs", *words])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("litlab: bad config:\n") and message in err
    assert not (tmp_path / "runs").exists()


def test_bad_config_from_a_real_process_exits_non_zero_without_traceback(tmp_path):
    result = litlab("train", "optimizer.lr=-1", "data.holdout=never", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Invalid learning rate: -1" in result.stderr or "holdout" in result.stderr
    assert not (tmp_path / "runs").exists()


MODELS = ("svc", "logreg", "majority")  # the circles' baselines, trivial last


@pytest.mark.slow
def test_train_from_a_real_process_names_the_run_folder_last(tmp_path):
    result = litlab("train", "trainer.max_epochs=50", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("run folder: runs/circles/")
    # the test metrics as a table: the network beside its baselines
    header = lines.index("metric      network  svc     logreg  majority")
    (acc,) = [line.split() for line in lines[header:] if line.startswith("test/acc")]
    metrics = json.loads(
        (tmp_path / lines[-1].removeprefix("run folder: ") / "metrics.json").read_text()
    )
    assert acc == [
        "test/acc",
        *(f"{metrics[k]:.4f}" for k in ("test/acc", *(f"baseline/{m}/acc" for m in MODELS))),
    ]
    assert (tmp_path / lines[-1].removeprefix("run folder: ") / "metrics.json").exists()
    assert any(
        line.startswith(("the network wins", "the baseline wins", "a tie")) for line in lines
    )


@pytest.mark.slow
@pytest.mark.parametrize("entry", [["-m", "litlab.train"], ["src/litlab/train.py"]])
def test_the_recipe_trains_when_run_as_a_module_or_a_script(tmp_path, entry):
    """As `python src/train.py` does in lightning-hydra-template."""
    words = ["trainer.max_epochs=2", "logger=none", "callbacks.dashboard=null"]
    done = subprocess.run(
        [sys.executable, *entry, *words, f"runs_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "circles").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
