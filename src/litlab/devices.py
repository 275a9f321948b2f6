"""Which GPUs a worker of `sweep -j N` or `search -j N` may see.

Every child process would otherwise pick GPU 0 (Lightning's `devices: 1` is the first GPU
it sees), so N jobs on an N-GPU machine would share one. Each worker slot is given its
own GPUs through CUDA_VISIBLE_DEVICES; a job that asks for k devices (trainer=ddp with
trainer.devices=k) takes k of them.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA names them: its own CUDA_VISIBLE_DEVICES
    when set (children get a subset of it), else every GPU torch counts."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        return [g for g in mask.split(",") if g.strip()]
    import torch  # only here: the command line answers fast without it

    return [str(i) for i in range(torch.cuda.device_count())]


def gpus_per_job(trainer: Any, available: int) -> int:
    """How many GPUs one job asks for: `trainer.devices` (a number, a list of ids, or
    auto / -1: all of them); a job on the CPU asks for none."""
    if str(trainer.get("accelerator", "auto")) == "cpu":
        return 0
    devices = trainer.get("devices", 1)
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        return len(devices)  # ids of GPUs: as many as it names
    text = str(devices).strip()
    if "," in text:  # Lightning's "0,1"
        return len([g for g in text.split(",") if g.strip()])
    if text.isdigit() and int(text) > 0:
        return int(text)
    return available  # "auto" or -1


def worker_environment(
    slot: int, per_job: int, gpus: list[str], workers: int = 1
) -> dict[str, str]:
    """The environment change for worker `slot`: its `per_job` GPUs, taken in turn from
    `gpus` (slot 0 the first ones); with more slots than GPUs, slots share them round
    robin. A job on the CPU gets its share of the cores instead: torch would start as
    many threads as the machine has cores in every worker (measured: 4 circles trials
    took 11 s one at a time and 22 s with -j 2 on two cores, oversubscribed)."""
    if not gpus or per_job <= 0:
        if workers <= 1 or "OMP_NUM_THREADS" in os.environ:
            return {}
        return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    start = slot * per_job
    mine = [gpus[(start + i) % len(gpus)] for i in range(min(per_job, len(gpus)))]
    return {"CUDA_VISIBLE_DEVICES": ",".join(mine)}
