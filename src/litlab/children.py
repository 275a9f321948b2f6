"""Child processes of `sweep` and `search`: N at a time, each in a worker slot, never
outliving the command. SIGTERM or SIGINT to the parent is passed on to every child as
SIGTERM (each saves its step), no new child starts, and a second signal kills them; a
parent killed outright leaves no orphan (Linux sends each child SIGTERM)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class Child:
    command: list[str]
    log: Path  # stdout and stderr of the child


@dataclass
class Outcome:
    codes: list[int | None]  # exit status of each job (-N: killed by signal N); None: never started
    pids: list[int | None]  # process id of each job (a search worker names its trial by it)
    signal: signal.Signals | None  # the signal that stopped the batch, if one did


def python_command(*args: str) -> list[str]:
    """`python -P ARGS`: else the working folder comes first on sys.path (an omegaconf.py)."""
    return [sys.executable, "-P", *args]


def run_jobs(
    jobs: list[Child], slots: int, environment: Callable[[int], dict[str, str]]
) -> Outcome:
    """Run `jobs`, `slots` at a time; the child in slot k gets `environment(k)` on top of
    this process's environment."""
    received: list[signal.Signals] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, lambda n, _: received.append(signal.Signals(n)))
    codes: list[int | None] = [None] * len(jobs)
    pids: list[int | None] = [None] * len(jobs)
    waiting, running = list(range(len(jobs))), {}  # slot -> (job index, process)
    told = 0  # signals passed on so far
    try:
        while (waiting and not received) or running:
            while waiting and not received and len(running) < slots:
                slot, index = min(set(range(slots)) - set(running)), waiting.pop(0)
                running[slot] = (index, _start(jobs[index], environment(slot)))
                pids[index] = running[slot][1].pid
            if len(received) > told:
                told = len(received)
                for _, process in running.values():
                    (process.kill if told > 1 else process.terminate)()
            for slot, (index, process) in list(running.items()):
                if process.poll() is not None:
                    codes[index] = process.returncode
                    del running[slot]
            time.sleep(0.05)
    finally:  # an error of our own: no child may go on without us
        for _, process in running.values():
            process.kill()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return Outcome(codes, pids, received[0] if received else None)


def _start(job: Child, extra: dict[str, str]) -> subprocess.Popen:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()

    def die_with_parent() -> None:  # in the child: SIGTERM when the parent dies
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the prctl
            os.kill(os.getpid(), signal.SIGTERM)

    with open(job.log, "a") as log:
        return subprocess.Popen(
            job.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            # PYTHONSAFEPATH is -P for what the child starts (Lightning's DDP launcher)
            env={**os.environ, "PYTHONSAFEPATH": "1", **extra},
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
