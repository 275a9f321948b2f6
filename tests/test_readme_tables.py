"""The README's "Your own data" example, run exactly as written (in a temporary folder)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import check_task_cell

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.slow
def test_the_worked_example_runs_as_written(tmp_path):
    text = section("Your own data")
    commands = re.search(r"```sh\n(.*?)```", text, re.S).group(1).strip().splitlines()
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    outputs = []
    for command in commands:
        done = subprocess.run(
            command,
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            executable="/bin/bash",
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        outputs.append(done.stdout)
    shown = re.search(r"```\n(task: .*?)\n\.\.\.\n```", text, re.S).group(1).splitlines()
    for line in shown[:3]:  # the task, the classes, the rows: as the README shows them
        assert line in outputs[1], line
    assert re.search(r"patient_id\s+dropped\s+an id: all 569 values differ", outputs[1])
    out = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert set(out["prediction"]) == {"benign", "malignant"} and (out["problem"] == "").all()
    assert (out["prediction"] == out["diagnosis"]).mean() > 0.9
    assert "ignored columns the network does not use: patient_id, diagnosis" in outputs[3]
    (metrics,) = (tmp_path / "runs" / "cancer").glob("*/metrics.json")
    check_task_cell("cancer", json.loads(metrics.read_text()))  # the task table's column
