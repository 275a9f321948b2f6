"""Every `make train`, `litlab train` and `make sweep` example in the README and the docs
pages goes through Hydra's composition and litlab's key check as written: an example that
no longer composes is a page that lies."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from litlab.check import check
from litlab.config import ConfigError, compose
from litlab.sweep import grid

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Words an example shows as a placeholder (`resume=runs/circles/2026-…`, `<the words>`):
# they name a run folder or words of the reader's, not a config to compose.
PLACEHOLDERS = ("…", "<", "resume=")
# The examples the pages show failing, with the error they show.
FAILING = {"optimizer.lrr=0.1 trainer.max_epochs=ten", "optimizer.lr=oops"}


def examples(page: Path) -> list[str]:
    """The words of every train or sweep command in the page's code blocks."""
    found = []
    for body in re.findall(r"^```[^\n]*\n(.*?)^```$", page.read_text(), re.M | re.S):
        for line in body.splitlines():
            line = line.split("  #")[0].strip().removeprefix("$ ")
            make = re.match(r'make (train|sweep) ARGS="([^"]*)"', line)
            litlab = re.match(r"(?:\.venv/bin/)?litlab (train|sweep)\s+(.*)", line)
            match = make or litlab
            if match and not any(mark in match.group(2) for mark in PLACEHOLDERS):
                found.append(match.group(2).strip())
    return found


CASES = [(page, words) for page in PAGES for words in examples(page)]


def test_the_pages_have_examples():
    assert len(CASES) >= 10
    docs = {page for page, _ in CASES if page.parent.name == "docs"}
    assert len(docs) >= 4, sorted(p.name for p in docs)  # the commands moved with the topics


@pytest.mark.parametrize(
    ("page", "words"), CASES, ids=[f"{p.relative_to(ROOT)}: {w}" for p, w in CASES]
)
def test_an_example_composes_as_written(page, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # with the page's own files: its model and data options
    for name, body in re.findall(r"^```\w+ file=(\S+)\n(.*?)^```$", page.read_text(), re.M | re.S):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    split = [w for w in shlex.split(words) if not w.startswith("-") and w != "job"]
    for run in grid(split)[:1]:  # a sweep's first setting: the others differ in values
        if words in FAILING:
            with pytest.raises(ConfigError):
                check(compose(run), build=False)
        else:
            check(compose(run), build=False)
