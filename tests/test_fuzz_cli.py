"""A fixed, seeded list of generated command lines: each one trains (a tiny budget) or
exits with 2, every error on its own line and no run folder made; never a traceback."""

from __future__ import annotations

import json
import random

import pytest

from litlab.cli import main

# Values each key may take in the fuzz: mostly ones no run can use.
CHOICES = {
    "trainer.log_every_n_steps": [0, -1, 1],
    "trainer.check_val_every_n_epoch": [0, -2, 1],
    "trainer.accumulate_grad_batches": [0, -1, 2],
    "trainer.max_epochs": [-1, 0, 2],
    "callbacks.progress_bar.refresh_rate": [0, -5, 1],
    "callbacks.dashboard.every_n_epochs": [0, 1],
    "scheduler.step_size": [0, -1, 1],
    "callbacks.checkpoint.monitor": ["nonexistent", "val/acc", "train/loss", "val/r2"],
    "data.folds": [-3, 0, 1, 2],
    "optimizer.lr": [-1, "oops", 0.05],
    "name": ["../../escaped", "/abs", "ok"],
}


def command_lines(count: int = 100, seed: int = 17) -> list[list[str]]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        keys = rng.sample(sorted(CHOICES), rng.randint(1, 3))
        words = [f"{key}={rng.choice(CHOICES[key])}" for key in keys]
        if any(w.startswith("scheduler.") for w in words):
            words.insert(0, "scheduler=step")
        lines.append(words)
    return lines


@pytest.mark.slow
def test_fuzzed_command_lines_train_or_fail_in_one_line_each(tmp_path, capsys):
    trained = 0
    for index, words in enumerate(command_lines()):
        runs = tmp_path / f"runs{index}"
        # a tiny budget: 2 epochs unless the line says otherwise; no pictures, no events
        base = ["trainer.max_epochs=2", "logger=none", f"runs_dir={runs}"]
        code = main(["train", *base, *words])
        err = capsys.readouterr().err
        assert "Traceback" not in err, words
        if code == 0:
            trained += 1
            statuses = [json.loads(p.read_text())["status"] for p in runs.rglob("metrics.json")]
            assert statuses and set(statuses) == {"finished"}, words
        else:
            assert code == 2, (words, err)
            header, *errors = err.strip().splitlines()
            assert header == "litlab: bad config:" and errors, (words, err)
            assert all(e.startswith("  ") and "(" in e for e in errors), (words, err)
            assert not runs.exists() and not (tmp_path / "escaped").exists(), words
    assert 0 < trained < 30  # both kinds are exercised; most lines stop at the check
