"""SLURM's `--signal=USR1@90` before the time limit: the run saves the step, requeues the
job, and the requeued job (the same command) continues the same run folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from litlab.checkpoints import load_checkpoint
from litlab.train import run

WORDS = ["data.batch_size=8", "trainer.max_epochs=60", "callbacks.progress_bar.refresh_rate=1"]
JOB = "4242"


def slurm_environment(tmp_path: Path) -> dict[str, str]:
    """What SLURM gives a one-task job, and a stub `scontrol` that notes its arguments."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    scontrol = stubs / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.txt"}\n')
    scontrol.chmod(0o755)
    slurm = {"SLURM_JOB_ID": JOB, "SLURM_JOB_NAME": "litlab-test", "SLURM_NTASKS": "1"}
    slurm |= {"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    path = f"{stubs}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, **slurm, "PATH": path, "OMP_NUM_THREADS": "1"}


def litlab_train(runs: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "litlab", "train", f"runs_dir={runs}", *WORDS]
    with log.open("w") as stderr:
        return subprocess.Popen(command, stderr=stderr, env=env)


def steps_per_tag(run_dir: Path) -> dict[str, list[int]]:
    """Every scalar tag's steps, over all the folder's event files, duplicates kept
    (conftest's `scalars` lets TensorBoard drop the steps a restart logged again)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


@pytest.mark.slow
def test_sigusr1_requeues_and_the_requeued_job_continues_the_run(make_config, tmp_path):
    env, runs = slurm_environment(tmp_path), tmp_path / "slurm-runs"
    log = tmp_path / "stderr.txt"
    first = litlab_train(runs, env, log)
    deadline = time.monotonic() + 600  # only so that a broken run cannot hang the suite
    while "train/loss=" not in log.read_text() and first.poll() is None:
        assert time.monotonic() < deadline, "no training loss logged"
        time.sleep(0.05)
    first.send_signal(signal.SIGUSR1)
    assert first.wait(timeout=600) == 128 + signal.SIGUSR1, log.read_text()
    run_dir = runs / "circles" / f"slurm-{JOB}"
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", JOB]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"
    stopped_at = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert 0 < stopped_at < 60 * 44  # stopped in the middle

    requeued = litlab_train(runs, env, log)  # SLURM runs the job's command again
    assert requeued.wait(timeout=600) == 0, log.read_text()
    assert f"litlab: SLURM job {JOB}: resuming {run_dir}" in log.read_text()
    assert [p.name for p in (runs / "circles").iterdir()] == [f"slurm-{JOB}"]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", JOB]  # once

    straight_dir, _ = run(make_config(*WORDS))
    for key, value in weights(straight_dir).items():
        assert torch.equal(weights(run_dir)[key], value), key
    logged, straight = steps_per_tag(run_dir), steps_per_tag(straight_dir)
    for tag, steps in logged.items():
        assert len(steps) == len(set(steps)), f"{tag}: a step logged twice"
    assert logged["train/loss"] == straight["train/loss"]  # none missing either
