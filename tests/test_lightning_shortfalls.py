"""What Lightning itself does where litlab keeps a part of its own (SignalStop's signal
handling, the SLURM requeue), and what Lightning runs under DDP at every step. Each test
pins Lightning's behaviour: a release that changes it fails here, and the part of ours
can go, or the README's account of what runs per step must change."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Lightning's behaviour, which no edit of litlab changes: make test runs these, test-fast not.
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

PLAIN_LIGHTNING = """
import os, signal, sys
import lightning as L, torch
from lightning.pytorch.callbacks import ModelCheckpoint

class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, _):
        if self.global_step == 3:  # in the middle of step 3, as a user's Ctrl-C comes
            os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

rows = torch.utils.data.TensorDataset(torch.randn(64, 2))
saves = ModelCheckpoint(sys.argv[1], filename="on_exception", save_on_exception=True)
trainer = L.Trainer(
    max_epochs=5, logger=False, enable_progress_bar=False, enable_model_summary=False,
    default_root_dir=sys.argv[1], callbacks=[saves],
)
trainer.fit(Net(), torch.utils.data.DataLoader(rows, batch_size=8))
"""


def plain_lightning(tmp_path: Path, signal_name: str) -> tuple[int, int]:
    """Lightning alone, with its own save on exception, signalled during step 3: the
    exit status, and the step the saved checkpoint holds."""
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_LIGHTNING, str(tmp_path), signal_name],
        capture_output=True,
        text=True,
        timeout=600,
    )
    (saved,) = tmp_path.glob("on_exception*.ckpt")
    return done.returncode, torch.load(saved, weights_only=True)["global_step"]


def test_lightning_saves_on_sigterm_but_exits_as_if_it_had_finished(tmp_path):
    """Lightning finishes the step and saves it, then exits with status 0 (its
    SIGTERMException is a SystemExit without a code): a scheduler, a sweep or a shell
    script takes the stopped run for a finished one. SignalStop exits 143."""
    assert plain_lightning(tmp_path, "SIGTERM") == (0, 4)


def test_lightning_stops_ctrl_c_in_the_middle_of_the_step(tmp_path):
    """Ctrl-C is a KeyboardInterrupt inside the step: Lightning drops that step (the save
    holds step 3, during which it came) and exits 1, not the 130 a shell reports for
    Ctrl-C. SignalStop finishes the step, saves it and exits 130."""
    assert plain_lightning(tmp_path, "SIGINT") == (1, 3)


SLURM_REQUEUE = """
import os, signal, sys
import lightning as L, torch
from lightning.fabric.plugins.environments import SLURMEnvironment

class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, _):
        if self.global_step == 3:  # SLURM's --signal=USR1@90 comes during step 3
            os.kill(os.getpid(), signal.SIGUSR1)
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

rows = torch.utils.data.TensorDataset(torch.randn(64, 2))
trainer = L.Trainer(
    max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
    enable_checkpointing=False, default_root_dir=sys.argv[1],
    plugins=[SLURMEnvironment(auto_requeue=True)],
)
trainer.fit(Net(), torch.utils.data.DataLoader(rows, batch_size=8))
print(trainer.global_step)
"""


def test_lightnings_slurm_requeue_saves_inside_the_signal_handler_and_trains_on(tmp_path):
    """SLURMEnvironment(auto_requeue=True): on SIGUSR1 Lightning saves from inside the
    signal handler, in the middle of the step (the file holds step 3, during which the
    signal came), requeues the job, and then trains on to the end, so what it trains after
    the save is lost when SLURM ends the job. litlab turns auto_requeue off and stops
    after the step like a SIGTERM (builders.build_trainer, resuming.requeue_on_usr1)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.txt"}\n')
    (stubs / "scontrol").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "t", "SLURM_NTASKS": "1"}
    slurm |= {"SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    path = f"{stubs}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        [sys.executable, "-c", SLURM_REQUEUE, str(tmp_path)],
        env={**os.environ, **slurm, "PATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "16"  # both epochs trained, after the requeue
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", "4242"]
    (saved,) = tmp_path.glob("hpc_ckpt_*.ckpt")
    assert torch.load(saved, weights_only=True)["global_step"] == 3


@pytest.mark.slow
def test_what_runs_between_the_ranks_at_every_step(tmp_path):
    """Under DDP (2 gloo processes, 6 mini-batch steps an epoch, logging every 5), the
    collectives asked for from Python at each step: Lightning's broadcast of its SIGTERM
    flag, read back with `.item()` (a wait for the GPU there); at the steps Lightning logs,
    the logged metrics' synchronisation, then DivergenceCheck's and SignalStop's
    all-gathers. DDP's gradient all-reduce runs in its C++ reducer, not counted here."""
    words = ["trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=32"]
    words += ["trainer.max_epochs=2", "trainer.log_every_n_steps=5"]
    words += ["trainer.check_val_every_n_epoch=2", "callbacks.progress_bar=null"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "ddp_patched.py"), f"collectives:{tmp_path}", *words],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        found = json.loads((tmp_path / f"collectives_{rank}.json").read_text())
        by_step = collections.defaultdict(list)
        for ended, name in found["calls"]:
            by_step[ended + 1].append(name)  # asked for after `ended` steps: in the next
        assert found["steps"] == 12
        for step in range(2, 12):  # the steps after set-up, before the last validation
            logged = ["barrier", "all_reduce", "barrier", "all_reduce", "all_gather", "all_gather"]
            expected = ["broadcast", *(logged if step % 5 == 0 else [])]
            assert by_step[step] == expected, (rank, step, by_step[step])
