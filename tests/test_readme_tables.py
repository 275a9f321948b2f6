"""The worked table example ("Your own table": make a CSV, train, eval, predict), run
exactly as written (in a temporary folder) on every page that shows it."""

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

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TITLE = "Your own table"


def section(page: Path, title: str) -> str | None:
    """The text of the page's section headed `## title`, up to the next `## `; None if none."""
    text = page.read_text()
    found = re.search(rf"^## {re.escape(title)}\n", text, re.M)
    if found is None:
        return None
    end = text.find("\n## ", found.end())
    return text[found.start() : end if end != -1 else len(text)]


SHOWN = [page for page in PAGES if section(page, TITLE)]


def test_a_page_shows_the_worked_example():
    assert SHOWN, f"no page of the README or docs/ has a '## {TITLE}' section"


@pytest.mark.slow
@pytest.mark.parametrize("page", SHOWN, ids=[str(p.relative_to(ROOT)) for p in SHOWN])
def test_the_worked_example_runs_as_written(page, tmp_path):
    text = section(page, TITLE)
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
    for line in shown[:3]:  # the task, the classes, the rows: as the page shows them
        assert line in outputs[1], line
    assert re.search(r"patient_id\s+dropped\s+an id: all 569 values differ", outputs[1])
    out = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert set(out["prediction"]) == {"benign", "malignant"} and (out["problem"] == "").all()
    assert (out["prediction"] == out["diagnosis"]).mean() > 0.9
    assert "ignored columns the network does not use: patient_id, diagnosis" in outputs[3]
    (metrics,) = (tmp_path / "runs" / "cancer").glob("*/metrics.json")
    check_task_cell("cancer", json.loads(metrics.read_text()))  # the task table's column
