"""No test leaves a process behind: conftest's `no_process_left` finds even an orphan."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import descendants, kill_all


def test_an_orphan_of_a_test_stays_findable_and_is_killed():
    """A shell that starts `sleep` and exits orphans it, as a launcher killed before its
    workers does: it is adopted by this process, not lost to init, so it can be killed."""
    started = subprocess.run(
        ["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True
    )
    orphan = int(started.stdout)
    assert orphan in descendants(os.getpid())
    kill_all([orphan])
    assert not Path(f"/proc/{orphan}").exists()
