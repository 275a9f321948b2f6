"""Runs started at the same moment never share a folder."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from litlab.train import claim_run_dir


def test_runs_started_at_once_never_share_a_folder(tmp_path):
    starting_gun = threading.Barrier(8)

    def claim(_: int) -> Path:
        starting_gun.wait()  # all eight ask in the same instant, in the same second
        return claim_run_dir(tmp_path)

    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(claim, range(8)))
    assert len(set(folders)) == 8 and all(folder.is_dir() for folder in folders)
