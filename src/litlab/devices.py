"""The machine's devices: whether a config's device and precision run here, and the
GPUs each worker of `sweep -j N` or `search -j N` may see (CUDA_VISIBLE_DEVICES: else
every child would pick GPU 0)."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

from litlab.config import SourcedConfig


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


def runs_on_gpu(accelerator: str, has_gpu: bool) -> bool:
    """Whether the Trainer's `accelerator` puts the run on a GPU, on this machine."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and has_gpu)


def placement_errors(composed: SourcedConfig, has_gpu: bool) -> list[str]:
    """A GPU that is not there, and a precision the CPU cannot run (Lightning would stop
    deep inside, or quietly switch 16-mixed to bf16-mixed)."""
    trainer = composed.cfg.trainer
    accelerator, precision = str(trainer.get("accelerator", "auto")), str(trainer.get("precision"))
    on_gpu = runs_on_gpu(accelerator, has_gpu)
    if accelerator in ("gpu", "cuda") and not has_gpu:
        where = composed.source("trainer.accelerator")
        return [
            f"trainer.accelerator={accelerator} ({where}): this machine has no GPU that torch "
            "can use; use trainer=default (the CPU)"
        ]
    if precision in ("16-mixed", "16") and not on_gpu:
        where = composed.source("trainer.precision")
        return [
            f"trainer.precision={precision} ({where}): float16 mixed precision needs a GPU; "
            "on the CPU use bf16-mixed or 32-true"
        ]
    return _clip_errors(composed) if precision in ("16-mixed", "16") else []


def _clip_errors(composed: SourcedConfig) -> list[str]:
    """float16's loss scaling with gradient clipping and a fused optimiser: Lightning
    refuses it with a traceback at the first step (it cannot unscale a fused optimiser's
    gradients before clipping them)."""
    clip = composed.cfg.trainer.get("gradient_clip_val")
    fused = OmegaConf.select(composed.cfg, "optimizer.fused")
    if not clip or fused is not True:
        return []
    return [
        f"trainer.gradient_clip_val={clip} ({composed.source('trainer.gradient_clip_val')}) "
        f"with trainer.precision={composed.cfg.trainer.precision} and optimizer.fused=true "
        f"({composed.source('optimizer.fused')}): Lightning cannot clip a fused optimiser's "
        "gradients under float16 scaling; add optimizer.fused=false (or use bf16-mixed)"
    ]


def torch_build() -> str:
    """This torch's version and build, as an install line needs them."""
    import torch

    cuda = torch.version.cuda
    return f"torch {torch.__version__}, " + (f"CUDA {cuda}" if cuda else "CPU only")
