"""The machine's devices: whether a config's device and precision run here, and the GPUs
(or CPU threads) each worker of `sweep -j N` or `search -j N` gets."""

from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

from litlab.config import SourcedConfig


def visible_gpus() -> list[str]:
    """The GPUs this process may use: its CUDA_VISIBLE_DEVICES, else every GPU torch counts."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        return [g for g in mask.split(",") if g.strip()]
    import torch  # only here: the command line answers fast without it

    return [str(i) for i in range(torch.cuda.device_count())]


def gpus_per_job(trainer: Any, available: int) -> int:
    """The GPUs one job asks for: `trainer.devices` (a number, ids, or auto / -1: all)."""
    if str(trainer.get("accelerator", "auto")) == "cpu":
        return 0
    devices = trainer.get("devices", 1)
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        return len(devices)
    text = str(devices).strip()
    if "," in text:  # Lightning's "0,1"
        return len([g for g in text.split(",") if g.strip()])
    return int(text) if text.isdigit() and int(text) > 0 else available


def worker_environment(
    slot: int, per_job: int, gpus: list[str], workers: int = 1
) -> dict[str, str]:
    """The environment of worker `slot`: its `per_job` GPUs in turn (round robin when the
    slots outnumber them); on the CPU its share of the cores, as torch would otherwise start
    a thread per core in every worker (4 trials took twice as long with -j 2 on 2 cores)."""
    if not gpus or per_job <= 0:
        if workers <= 1 or "OMP_NUM_THREADS" in os.environ:
            return {}
        return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    start = slot * per_job
    mine = [gpus[(start + i) % len(gpus)] for i in range(min(per_job, len(gpus)))]
    return {"CUDA_VISIBLE_DEVICES": ",".join(mine)}


def runs_on_gpu(accelerator: str, has_gpu: bool) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and has_gpu)


def placement_errors(composed: SourcedConfig, has_gpu: bool) -> list[str]:
    """A GPU that is not there; a precision the CPU cannot run (Lightning would stop deep
    inside, or quietly run bf16-mixed); clipping a fused optimiser under float16 scaling,
    which Lightning refuses at the first step."""
    trainer, source = composed.cfg.trainer, composed.source
    accelerator, precision = str(trainer.get("accelerator", "auto")), str(trainer.get("precision"))
    if accelerator in ("gpu", "cuda") and not has_gpu:
        return [
            f"trainer.accelerator={accelerator} ({source('trainer.accelerator')}): this machine "
            "has no GPU that torch can use; use trainer=default (the CPU)"
        ]
    if precision not in ("16-mixed", "16"):
        return []
    if not runs_on_gpu(accelerator, has_gpu):
        return [
            f"trainer.precision={precision} ({source('trainer.precision')}): float16 mixed "
            "precision needs a GPU; on the CPU use bf16-mixed or 32-true"
        ]
    clip = trainer.get("gradient_clip_val")
    if not clip or OmegaConf.select(composed.cfg, "optimizer.fused") is not True:
        return []
    return [
        f"trainer.gradient_clip_val={clip} ({source('trainer.gradient_clip_val')}) with "
        f"trainer.precision={precision} and optimizer.fused=true ({source('optimizer.fused')}): "
        "Lightning cannot clip a fused optimiser's gradients under float16 scaling; add "
        "optimizer.fused=false (or use bf16-mixed)"
    ]


def torch_build() -> str:
    """This torch's version and build, as an install line needs them."""
    import torch

    cuda = torch.version.cuda
    return f"torch {torch.__version__}, " + (f"CUDA {cuda}" if cuda else "CPU only")
