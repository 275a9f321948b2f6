"""Run folders: names stay inside runs_dir, one process owns a folder at a time, last.ckpt
is the newest state, and a damaged or foreign checkpoint is one error naming the file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import torch

from litlab.cli import main
from litlab.train import run

TINY = ("logger=none", "callbacks.dashboard=null", "callbacks.progress_bar=null")


def test_a_run_name_cannot_leave_runs_dir(tmp_path, capsys):
    runs = tmp_path / "deep" / "runs"
    for name in ("../../escaped", "/tmp/abs", "a/../../b"):
        assert main(["train", f"runs_dir={runs}", f"name={name}"]) == 2
        err = capsys.readouterr().err
        assert f"name={name} (the command line): must stay inside runs_dir" in err
    assert list(tmp_path.rglob("*")) == []


def test_last_ckpt_is_the_final_state_even_when_best_stops_improving(make_config):
    """mode=max on val/loss: the first validation stays the best, so Lightning's own
    save_last would leave last.ckpt at step 1; 5 epochs, validated at 2 and 4."""
    words = ("trainer.max_epochs=5", "trainer.check_val_every_n_epoch=2", *TINY)
    run_dir, _ = run(make_config(*words, "callbacks.checkpoint.mode=max"))
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert (best["global_step"], last["global_step"]) == (2, 5)  # one full-batch step an epoch


def test_resuming_a_run_stopped_after_its_training_trains_nothing_again(make_config):
    words = ("trainer.max_epochs=4", "trainer.check_val_every_n_epoch=3", *TINY)
    run_dir, first = run(make_config(*words, "callbacks.checkpoint.mode=max"))
    (run_dir / "metrics.json").write_text('{"status": "interrupted"}')  # killed in its test
    _, again = run(make_config(f"resume={run_dir}"))
    assert again["epochs"] == first["epochs"] == 4
    assert again["test/loss"] == first["test/loss"]


HOLD = """
import sys
from pathlib import Path
from litlab.rundirs import lock_run_dir
lock_run_dir(Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_run_folder_is_owned_by_one_process(make_config, capsys):
    from conftest import owner

    run_dir, _ = run(make_config("trainer.max_epochs=2", *TINY))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"
        assert owner(run_dir) == holder.pid
        status = (run_dir / "metrics.json").read_text()
        assert main(["train", f"resume={run_dir}", "trainer.max_epochs=4"]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (
            f"litlab: {run_dir}: in use by process {holder.pid}; a run folder is written by "
            "one process at a time: wait for it to end (or stop it) and try again"
        )
        assert (run_dir / "metrics.json").read_text() == status
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process, never stale
        holder.wait()
    assert owner(run_dir) is None
    assert main(["train", f"resume={run_dir}", "trainer.max_epochs=4"]) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 4
    # the last epoch validates (best.ckpt); no stray last-v1.ckpt, best-v1.ckpt or partial file
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_a_zero_byte_checkpoint_is_one_error_naming_it(make_config, tmp_path, capsys):
    run_dir, _ = run(make_config("trainer.max_epochs=2", *TINY))
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(b"")
    (tmp_path / "in.csv").write_text("x1,x2\n0,0\n")
    assert main(["eval", str(last)]) == 2
    assert main(["predict", str(last), str(tmp_path / "in.csv"), str(tmp_path / "o.csv")]) == 2
    assert main(["train", f"resume={run_dir}", "trainer.max_epochs=4"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines.count(f"  {last}: not a readable checkpoint (File is not a zip file)") == 3


def test_another_jobs_checkpoint_is_refused_and_the_folder_kept(make_config, capsys):
    ours, _ = run(make_config("trainer.max_epochs=2", *TINY))
    theirs, _ = run(make_config("trainer.max_epochs=2", "model.hidden=[3]", *TINY))
    shutil.copy(theirs / "checkpoints" / "last.ckpt", ours / "checkpoints" / "last.ckpt")
    before = {p: p.read_bytes() for p in ours.rglob("*") if p.is_file()}
    assert main(["train", f"resume={ours}", "trainer.max_epochs=4"]) == 2
    (line,) = capsys.readouterr().err.splitlines()[1:]
    assert line.startswith(f"  {ours / 'checkpoints' / 'last.ckpt'}: not a checkpoint of this run")
    assert {p: p.read_bytes() for p in ours.rglob("*") if p.is_file()} == before
