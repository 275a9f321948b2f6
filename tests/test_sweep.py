"""Sweeps: a grid of independent runs, checked first, resumable, ranked."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import held_elsewhere

from litlab.config import ConfigError
from litlab.sweep import grid, summarise, sweep

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "diabetes_cohort.csv"


def test_grid_is_every_combination_and_lists_stay_whole():
    runs = grid(["optimizer=sgd,adam", "seed=1,2", "model.hidden=[8,8]"])
    assert runs == [
        ["optimizer=sgd", "seed=1", "model.hidden=[8,8]"],
        ["optimizer=sgd", "seed=2", "model.hidden=[8,8]"],
        ["optimizer=adam", "seed=1", "model.hidden=[8,8]"],
        ["optimizer=adam", "seed=2", "model.hidden=[8,8]"],
    ]


def test_summary_averages_seeds_and_ranks_by_the_monitor():
    F = "finished"
    results = [
        (["optimizer=sgd", "seed=1"], {"status": F, "best_val/loss": 0.5, "test/acc": 0.8}),
        (["optimizer=sgd", "seed=2"], {"status": F, "best_val/loss": 0.7, "test/acc": 0.6}),
        (["optimizer=adam", "seed=1"], {"status": F, "best_val/loss": 0.2, "test/acc": 0.9}),
        (["optimizer=adam", "seed=2"], None),  # failed
    ]
    rows = summarise(results, ["optimizer", "seed"], "best_val/loss", "min")
    assert [r["setting"] for r in rows] == ["optimizer=adam", "optimizer=sgd"]
    assert rows[0]["runs"] == 1 and rows[0]["failed"] == 1
    assert rows[1]["best_val/loss"] == pytest.approx(0.6) and rows[1][
        "best_val/loss std"
    ] == pytest.approx(0.1414, abs=1e-4)
    assert [r["setting"] for r in summarise(results, ["optimizer", "seed"], "test/acc", "max")] == [
        "optimizer=adam",
        "optimizer=sgd",
    ]


def test_a_bad_value_stops_the_sweep_before_any_run(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"sweep run .*optimizer.lr=-1: optimizer \(.*Adam\): Invalid learning rate",
    ):
        sweep([f"runs_dir={tmp_path}", "optimizer.lr=0.1,-1"])
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow
def test_failed_runs_are_reported_the_others_finish_and_reruns_skip(tmp_path):
    words = [
        f"runs_dir={tmp_path}",
        "data=csv",
        f"data.path={EXAMPLE},{tmp_path}/none.csv",
        "seed=1,2",
        "trainer.max_epochs=20",
        "trainer.check_val_every_n_epoch=10",
    ]
    folder, rows = sweep(words, jobs=2)
    by_setting = {row["setting"]: row for row in rows}
    assert by_setting[f"data.path={EXAMPLE}"]["runs"] == 2
    assert by_setting[f"data.path={tmp_path}/none.csv"]["failed"] == 2
    with open(folder / "sweep_summary.csv") as f:
        assert [row["setting"] for row in csv.DictReader(f)] == [r["setting"] for r in rows]
    finished = sorted(folder.glob("*/run/*/metrics.json"))
    assert len(finished) == 2
    again_folder, again = sweep(words, jobs=2)
    assert (
        again_folder == folder and sorted(folder.glob("*/run/*/metrics.json")) == finished
    )  # skipped
    assert again[0]["test/r2"] == rows[0]["test/r2"]


def test_only_finished_runs_are_averaged_the_others_counted():
    results = [
        (
            ["optimizer=sgd", "seed=1"],
            {"status": "finished", "best_val/loss": 0.5, "test/acc": 0.8},
        ),
        (["optimizer=sgd", "seed=2"], {"status": "interrupted", "error": "SIGTERM"}),
        (["optimizer=adam", "seed=1"], {"status": "diverged", "error": "nan"}),
        (["optimizer=adam", "seed=2"], None),  # never wrote one (a config error, a kill)
    ]
    rows = summarise(results, ["optimizer", "seed"], "best_val/loss", "min")
    by_setting = {row["setting"]: row for row in rows}
    assert by_setting["optimizer=sgd"] | {} == {
        "setting": "optimizer=sgd",
        "runs": 1,
        "interrupted": 1,
        "failed": 0,
        "best_val/loss": 0.5,
        "best_val/loss std": 0.0,
        "test/acc": 0.8,
        "test/acc std": 0.0,
    }
    assert by_setting["optimizer=adam"] == {
        "setting": "optimizer=adam",
        "runs": 0,
        "interrupted": 0,
        "failed": 2,
    }


def test_each_worker_slot_sees_its_own_gpu(tmp_path, monkeypatch):
    """Two slots on a machine of two (pretended) GPUs: every run records the GPUs its
    process was given."""
    import litlab.sweep

    record = "import os, sys; open(sys.argv[1], 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"
    monkeypatch.setattr(litlab.sweep, "visible_gpus", lambda: ["0", "1"])
    monkeypatch.setattr(
        litlab.sweep,
        "_command",
        lambda _words, folder: [sys.executable, "-c", record, str(folder / "gpus.txt")],
    )
    words = [f"runs_dir={tmp_path}", "trainer.accelerator=auto", "seed=1,2,3,4"]
    folder, _ = sweep(words, jobs=2)
    seen = [(folder / f"seed={s}" / "gpus.txt").read_text() for s in (1, 2, 3, 4)]
    assert sorted(set(seen)) == ["0", "1"]  # both GPUs used, each run on one


@pytest.mark.parametrize(
    ("devices", "slot", "expected"),
    [
        (1, 0, "0"),
        (1, 1, "1"),
        (1, 5, "1"),  # more slots than GPUs: they share, round robin
        (2, 0, "0,1"),  # trainer=ddp trainer.devices=2: a job takes two
        (2, 1, "2,3"),
        ("auto", 1, "0,1,2,3"),
    ],
)
def test_gpus_by_slot(devices, slot, expected):
    from omegaconf import OmegaConf

    from litlab.devices import gpus_per_job, worker_environment

    gpus = ["0", "1", "2", "3"] if devices != 1 else ["0", "1"]
    per_job = gpus_per_job(OmegaConf.create({"accelerator": "gpu", "devices": devices}), len(gpus))
    assert worker_environment(slot, per_job, gpus) == {"CUDA_VISIBLE_DEVICES": expected}
    cpu = OmegaConf.create({"accelerator": "cpu", "devices": 1})
    assert worker_environment(slot, gpus_per_job(cpu, len(gpus)), gpus) == {}


def test_cpu_workers_share_the_cores(monkeypatch):
    from litlab.devices import worker_environment

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert worker_environment(0, 0, [], workers=2) == {"OMP_NUM_THREADS": "4"}
    assert worker_environment(1, 1, [], workers=16) == {"OMP_NUM_THREADS": "1"}
    assert worker_environment(0, 0, [], workers=1) == {}  # one worker: torch decides


# Imported in place of the installed omegaconf, it leaves a file saying so.
SHADOW = "import pathlib; pathlib.Path(__file__).with_name('shadowed.txt').write_text('ran')"
OWN_NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.linear(x)
"""


@pytest.mark.slow
def test_runs_never_import_the_working_folder_ahead_of_packages(tmp_path, monkeypatch):
    """An omegaconf.py where the sweep is started is not what its runs import; the
    user's own module there still is, for its _target_."""
    (tmp_path / "omegaconf.py").write_text(SHADOW)
    (tmp_path / "sweep_own_nets.py").write_text(OWN_NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # locate() appends the folder
    words = [
        f"runs_dir={tmp_path / 'runs'}",
        "model._target_=sweep_own_nets.Net",
        "trainer.max_epochs=2",
        "callbacks.dashboard=null",
    ]
    folder, (row,) = sweep(words)
    assert not (tmp_path / "shadowed.txt").exists()
    assert (row["runs"], row["failed"]) == (1, 0), (folder / "run" / "output.log").read_text()


def test_what_a_child_starts_does_not_import_the_working_folder_first(tmp_path, monkeypatch):
    """A child's own children (Lightning's DDP launcher runs `python -m litlab` again)
    keep the safe path: here `python -c`, which would put the folder first."""
    from litlab.children import Child, python_command, run_jobs

    (tmp_path / "omegaconf.py").write_text(SHADOW)
    monkeypatch.chdir(tmp_path)
    grandchild = (
        "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import omegaconf'])"
    )
    outcome = run_jobs([Child(python_command("-c", grandchild), tmp_path / "log")], 1, lambda _: {})
    assert outcome.codes == [0]
    assert not (tmp_path / "shadowed.txt").exists()


def _sweep_process(words: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "litlab", "sweep", "-j", "2", *words]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


def _wait(condition, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_run_and_a_rerun_resumes_them(tmp_path, signum):
    words = [
        f"runs_dir={tmp_path}",
        "seed=1,2",
        # the first checkpoints come after one epoch of 350 one-row steps, the end 2,450
        # steps later: the signal lands long before it (600 full-batch epochs took about
        # a second, and a run could finish between the checkpoint and the signal)
        "data.batch_size=1",
        "trainer.max_epochs=8",
        "trainer.check_val_every_n_epoch=1",
        "callbacks.dashboard=null",
    ]
    process = _sweep_process(words)
    folder = tmp_path / "sweeps"
    _wait(lambda: len(list(folder.glob("*/*/run/*/checkpoints/last.ckpt"))) == 2, "2 checkpoints")
    process.send_signal(signum)  # to the sweep only: it must stop its runs itself
    _, err = process.communicate(timeout=600)
    assert process.returncode == 128 + signum
    assert "Traceback" not in err and "sweep stopped; the summary so far is in" in err
    statuses = [json.loads(p.read_text())["status"] for p in folder.glob("*/*/run/*/metrics.json")]
    assert statuses == ["interrupted", "interrupted"]  # no run trains on as an orphan
    (summary,) = folder.glob("*/sweep_summary.csv")
    with open(summary) as f:
        (row,) = list(csv.DictReader(f))
    assert (row["runs"], row["interrupted"], row["failed"]) == ("0", "2", "0")
    # Run again: both resume in their own folders and finish.
    runs_before = sorted(folder.glob("*/*/run/*"))
    folder_again, rows = sweep(words, jobs=2)
    assert folder_again == summary.parent and sorted(folder.glob("*/*/run/*")) == runs_before
    assert (rows[0]["runs"], rows[0]["interrupted"], rows[0]["failed"]) == (2, 0, 0)


# A run that says whether its sweep folder was held while it ran (a shared flock fails).
PROBE = """
import fcntl, sys
from pathlib import Path
run = Path(sys.argv[1])
try:
    fcntl.flock(open(run.parent / ".lock"), fcntl.LOCK_SH | fcntl.LOCK_NB)
    held = "free"
except BlockingIOError:
    held = "held"
run.mkdir(parents=True, exist_ok=True)
(run / "lock.txt").write_text(held)
"""


def _probing(monkeypatch) -> None:
    import litlab.sweep

    command = lambda _words, folder: [sys.executable, "-c", PROBE, str(folder)]  # noqa: E731
    monkeypatch.setattr(litlab.sweep, "_command", command)


def test_a_sweep_holds_its_folder_while_its_runs_train_then_lets_go(tmp_path, monkeypatch):
    from conftest import owner

    _probing(monkeypatch)
    folder, _ = sweep([f"runs_dir={tmp_path}", "seed=1,2"], jobs=2)
    assert [(folder / f"seed={s}" / "lock.txt").read_text() for s in (1, 2)] == ["held"] * 2
    assert owner(folder) is None


def test_a_second_sweep_of_the_same_words_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    from litlab.cli import main
    from litlab.sweep import _name

    _probing(monkeypatch)
    words = [f"runs_dir={tmp_path}", "seed=1,2"]
    folder = tmp_path / "sweeps" / _name(words)
    folder.mkdir(parents=True)
    with held_elsewhere(folder) as pid:  # by the first sweep, as far as the folder can tell
        assert main(["sweep", *words]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"litlab: {folder}: in use by process {pid}; a run folder is written by one "
            "process at a time: wait for it to end (or stop it) and try again"
        ]
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # nothing ran
    main(["sweep", *words])  # the folder is free again: its runs start
    assert (folder / "seed=1" / "lock.txt").read_text() == "held"
