"""Checkpoints are written atomically: a kill in the middle of a save leaves the previous
checkpoint whole, and a save that fails is an error that keeps the previous one."""

from __future__ import annotations

import errno
import json
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from litlab.checkpoints import load_checkpoint
from litlab.cli import main

SAVER = textwrap.dedent(
    """
    import sys
    import torch
    from litlab.checkpoints import AtomicCheckpointIO

    writer = AtomicCheckpointIO()
    for i in range(1, 1000):  # 32 MB each: a save takes long enough to be killed inside
        writer.save_checkpoint({"i": i, "weights": torch.full((8_000_000,), float(i))}, sys.argv[1])
        print(i, flush=True)
    """
)


@pytest.mark.slow
def test_a_kill_during_a_save_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    partial = tmp_path / ".last.ckpt.partial"
    killed_mid_save = 0
    for attempt in range(6):
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True
        )
        saved = int(saver.stdout.readline())  # one whole save done; it is saving again
        time.sleep(random.Random(attempt).uniform(0.0, 0.4))
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        saved = max([saved, *(int(line) for line in saver.stdout)])
        saver.stdout.close()
        killed_mid_save += partial.exists()
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["i"] in (saved, saved + 1)  # the kill may land after the rename
        assert torch.equal(checkpoint["weights"], torch.full((8_000_000,), float(checkpoint["i"])))
        if killed_mid_save and attempt >= 2:  # three kills, one of them inside a save
            break
    assert killed_mid_save > 0  # the kills did land inside saves


def test_a_checkpoint_that_cannot_be_written_stops_the_run(tmp_path, monkeypatch, capsys):
    save, calls = torch.save, []

    def disk_fills_up(obj, file, *args, **kwargs):
        calls.append(file)
        if len(calls) > 2:  # best.ckpt and last.ckpt of the first validation go through
            raise OSError(errno.ENOSPC, "No space left on device")
        save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    words = ["trainer.max_epochs=20", "trainer.check_val_every_n_epoch=5"]
    code = main(["train", f"runs_dir={tmp_path}", *words])
    err = capsys.readouterr().err
    assert code == 1 and "not saved (No space left on device)" in err and "Traceback" not in err
    (run_dir,) = (tmp_path / "circles").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "not saved" in metrics["error"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 5
    assert not list(run_dir.glob("checkpoints/.*"))  # no partial file left behind
