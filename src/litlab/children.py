"""Child processes of `sweep` and `search`: N at a time, each in a worker slot (with its
own GPUs), and never outliving the command that started them. SIGTERM or SIGINT to the
parent is passed on to every child as SIGTERM (each saves its step and stops), no new
child starts, and the parent returns once they have ended; a second signal kills them.
A parent killed outright (SIGKILL) leaves no orphan: Linux sends each child SIGTERM."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.05  # how often ended children are collected: small beside a run's seconds


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
    """`python -P ARGS`: without -P, `-m` and `-c` put the working folder first on
    sys.path, where a file of the same name (an omegaconf.py) would shadow an installed
    package. The user's modules there still import, after the packages (signatures.locate)."""
    return [sys.executable, "-P", *args]


def run_jobs(
    jobs: list[Child], slots: int, environment: Callable[[int], dict[str, str]]
) -> Outcome:
    """Run `jobs`, `slots` at a time; the child in slot k gets `environment(k)` on top of
    this process's environment."""
    received: list[signal.Signals] = []
    previous = _catch(received)
    try:
        return _loop(jobs, slots, environment, received)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _catch(received: list[signal.Signals]) -> dict[signal.Signals, object]:
    def receive(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))

    if threading.current_thread() is not threading.main_thread():
        return {}  # Python allows handlers only there; the children still die with us
    return {s: signal.signal(s, receive) for s in SIGNALS}


def _loop(
    jobs: list[Child],
    slots: int,
    environment: Callable[[int], dict[str, str]],
    received: list[signal.Signals],
) -> Outcome:
    codes: list[int | None] = [None] * len(jobs)
    pids: list[int | None] = [None] * len(jobs)
    waiting, running = deque(range(len(jobs))), {}  # slot -> (job index, process)
    told = 0  # signals passed on so far
    try:
        while waiting or running:
            while waiting and not received and len(running) < slots:
                slot = min(set(range(slots)) - set(running))
                index = waiting.popleft()
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
            if received and not running:
                break
            time.sleep(POLL_S)
    finally:  # an error of our own: no child may go on without us
        for _, process in running.values():
            with contextlib.suppress(OSError):
                process.kill()
    return Outcome(codes, pids, received[0] if received else None)


def _start(job: Child, extra: dict[str, str]) -> subprocess.Popen:
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as log:
        return subprocess.Popen(
            job.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            # -P does not pass on: PYTHONSAFEPATH does, to the processes a child starts
            # itself (Lightning's DDP launcher runs `python -m litlab` again)
            env={**os.environ, "PYTHONSAFEPATH": "1", **extra},
            preexec_fn=_die_with(os.getpid()) if sys.platform == "linux" else None,
        )


def _die_with(parent: int) -> Callable[[], None]:
    """In the child, before it runs: ask Linux for SIGTERM when the parent dies; if it
    already has (it was killed between fork and here), stop now."""

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange
