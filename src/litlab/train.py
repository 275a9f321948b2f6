"""`train(composed)`: the recipe, top to bottom. Check, data, seed, model, trainer; fit; test;
baselines. `cross_validate` repeats it over k folds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from omegaconf import OmegaConf

from litlab import dashboard
from litlab.baselines import baselines
from litlab.callbacks import GracefulStop, RandomState, StoreConfig
from litlab.checkpoints import KEY, AtomicCheckpointIO, load_checkpoint, write_atomically
from litlab.config import CLI, Composed, ConfigError, instantiate, validate
from litlab.errors import Diverged, Interrupted
from litlab.optim import schedule

RUN_DIR_VARIABLE = "LITLAB_RUN_DIR"

# Lightning 2.6 on torch 2.13 warns about its own use of a deprecated torch API.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# With full-batch GD an epoch is one step: logging every n steps spans epochs, as meant.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval")
# Run folders are new, but for resume=, which continues in its own checkpoints/ on purpose.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


@dataclass
class Run:
    """A run ready to fit: its folder and the objects built from the config."""

    dir: Path
    trainer: L.Trainer
    module: L.LightningModule
    datamodule: L.LightningDataModule


def run(composed: Composed) -> tuple[Path, dict[str, Any]]:
    """One training run, or k of them when `data.folds` is set."""
    if composed.cfg.get("resume"):
        return resume(composed)
    folds = composed.cfg.data.get("folds")
    return cross_validate(composed, folds) if folds else train(composed)


def resume(composed: Composed) -> tuple[Path, dict[str, Any]]:
    """Continue the run in folder `resume` from its last.ckpt, in the same folder and
    TensorBoard run; a finished run goes on only if trainer.max_epochs was raised."""
    cfg = composed.cfg
    run_dir = Path(cfg.resume).expanduser()
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(
            [f"resume={cfg.resume} ({CLI}): no checkpoints/last.ckpt there to resume"]
        )
    checkpoint = load_checkpoint(last)
    done = checkpoint["epoch"] + 1
    finished = _status(run_dir) == "finished"  # not stopped by a signal, a crash or a kill
    if finished and cfg.trainer.max_epochs is not None and done >= cfg.trainer.max_epochs:
        raise ConfigError(
            [
                f"resume={cfg.resume} ({CLI}): that run finished its {done} epochs; to "
                f"train it further raise trainer.max_epochs (e.g. trainer.max_epochs={2 * done})"
            ]
        )
    # a fold of a cross-validation trains on its own split again
    return train(composed, checkpoint[KEY]["fold"], run_dir, last)


def train(
    composed: Composed,
    fold: int | None = None,
    run_dir: Path | None = None,
    checkpoint: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train (from `checkpoint`, when resuming) and test the configured job in its run
    folder; return the folder and metrics."""
    run = setup(composed, fold, run_dir)
    if checkpoint is None:
        dashboard.log_start(run.trainer, composed.cfg, run.datamodule)
    try:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=checkpoint)
    except (Diverged, Interrupted, OSError) as exc:  # OSError: a file that could not be written
        _record_stop(run.dir, exc)
        raise
    scores = baselines(run.datamodule)
    if run.trainer.logger is not None:
        run.trainer.logger.log_metrics(scores, step=run.trainer.global_step)
    metrics = evaluate(run) | scores
    dashboard.log_hparams(run.trainer, composed.cfg, metrics)
    metrics = {"status": "finished", **metrics}
    _write_metrics(run.dir, metrics)
    if run.trainer.logger is not None:  # baselines and hparams came after Lightning's close
        run.trainer.logger.finalize("success")
    return run.dir, metrics


def _record_stop(run_dir: Path, exc: Exception) -> None:
    """metrics.json for a run that stopped early: why, and the checkpoint to go on from.
    On a full disk this cannot be written either; the error that stopped the run is the
    one to report then."""
    status = {Diverged: "diverged", Interrupted: "interrupted"}.get(type(exc), "failed")
    with contextlib.suppress(OSError):
        _write_metrics(run_dir, {"status": status, "error": str(exc), **_last_good(run_dir)})


def _write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    if is_rank_zero():
        _write_json(run_dir / "metrics.json", metrics)


def _write_json(path: Path, values: dict[str, Any]) -> None:
    text = json.dumps(values, indent=2) + "\n"
    write_atomically(path, lambda file: file.write(text.encode()))


def _status(run_dir: Path) -> str | None:
    """How the run in `run_dir` ended, by its metrics.json; None if it never said."""
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _last_good(run_dir: Path) -> dict[str, str]:
    """The newest whole checkpoint: from the last validation (a loss that stopped being
    finite, a failed write) or the last step (a signal)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    return {"last_good_checkpoint": str(last.relative_to(run_dir))} if last.exists() else {}


def setup(composed: Composed, fold: int | None = None, run_dir: Path | None = None) -> Run:
    """Check the config, build everything and claim a run folder for it (`run_dir`, or a
    new timestamped one); a config error leaves no folder behind."""
    validate(composed)
    check_optimization(composed)
    cfg = composed.cfg
    datamodule = build(composed, "data", **({} if fold is None else {"fold": fold}))
    _prepare(composed, datamodule)
    L.seed_everything(cfg.seed, verbose=False)  # before the network: the seed fixes its weights
    module = build_module(
        composed, datamodule.num_features, datamodule.num_outputs, datamodule.module_kwargs()
    )
    if module.task != datamodule.task:
        raise ConfigError(
            [
                f"module ({composed.source('module')}): {type(module).__name__} is for "
                f"{module.task} tasks, but {type(datamodule).__name__} is {datamodule.task}"
            ]
        )
    check_placement(composed)
    new = run_dir is None or not run_dir.exists()  # resuming continues an existing one
    run_dir = _run_dir(composed, run_dir)
    try:
        trainer = build_trainer(composed, run_dir, fold)
    except BaseException:
        if new and is_rank_zero():
            _remove_empty(run_dir, Path(cfg.runs_dir).expanduser())  # nothing was written yet
        raise
    if is_rank_zero():
        OmegaConf.save(cfg, run_dir / "config.yaml")
    return Run(run_dir, trainer, module, datamodule)


def is_rank_zero() -> bool:
    """Whether this is the process that writes the run, by what the launcher put in the
    environment: torchrun and SLURM give every process its global RANK / SLURM_PROCID,
    Lightning's launcher starts the other processes of a machine with LOCAL_RANK, and
    the other machines have NODE_RANK (or torchrun's GROUP_RANK) > 0."""
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")))
    return rank_zero_only.rank == 0 and node == 0


def _run_dir(composed: Composed, run_dir: Path | None) -> Path:
    """Rank 0 creates the run folder and tells the processes Lightning starts for DDP;
    other ranks only name it (Lightning sends them rank 0's checkpoint folder)."""
    if not is_rank_zero():
        return Path(os.environ.get(RUN_DIR_VARIABLE) or run_root(composed) / "not-rank-zero")
    if run_dir is None:
        run_dir = claim_run_dir(run_root(composed))
    elif not run_dir.exists():  # a fold of a cross-validation (an existing one: resuming)
        run_dir.mkdir(parents=True)
    os.environ[RUN_DIR_VARIABLE] = str(run_dir)  # inherited by the processes DDP starts
    return run_dir


def _prepare(composed: Composed, datamodule: L.LightningDataModule) -> None:
    """Split and encode the data now, so a table that cannot be used stops the run
    before any folder is made (Lightning's own `setup` call then finds it done)."""
    try:
        datamodule.setup("fit")
    except ValueError as exc:
        raise ConfigError([f"data ({composed.source('data')}): {exc}"]) from None


def build(composed: Composed, path: str, **injected: Any) -> Any:
    """`instantiate` a node; an error its class raises about its arguments names the node."""
    node = OmegaConf.select(composed.cfg, path)
    try:
        return instantiate(node, **injected)
    except (ValueError, TypeError, MisconfigurationException) as exc:
        raise ConfigError([f"{path} ({composed.source(path)}, {node._target_}): {exc}"]) from None


def build_module(
    composed: Composed, in_features: int, outputs: int, data_kwargs: dict[str, Any]
) -> L.LightningModule:
    """The network, inside the LightningModule that trains it."""
    cfg = composed.cfg
    net = build(composed, "model", in_features=in_features, out_features=outputs)
    optimizer, scheduler = _plain(cfg.optimizer), _plain(cfg.scheduler)
    return build(
        composed, "module", net=net, optimizer=optimizer, scheduler=scheduler, **data_kwargs
    )


def check_optimization(composed: Composed) -> None:
    """Build the optimiser and schedule on a stand-in parameter, so that a bad value
    (a negative learning rate, a milestone list that is not sorted) stops the run before
    any folder is made."""
    cfg = composed.cfg
    lr = cfg.optimizer.get("lr")
    if isinstance(lr, int | float) and lr < 0:
        where = composed.source("optimizer.lr")
        raise ConfigError([f"optimizer.lr={lr} ({where}): must be >= 0 (the size of each step)"])
    try:
        opt = instantiate(_plain(cfg.optimizer), params=[torch.zeros(1, requires_grad=True)])
    except (ValueError, TypeError) as exc:
        where = composed.source("optimizer")
        raise ConfigError([f"optimizer ({where}, {cfg.optimizer._target_}): {exc}"]) from None
    try:
        schedule(opt, _plain(cfg.scheduler))
    except (ValueError, TypeError) as exc:
        where = composed.source("scheduler")
        raise ConfigError([f"scheduler ({where}, {cfg.scheduler._target_}): {exc}"]) from None


def build_trainer(composed: Composed, run_dir: Path, fold: int | None = None) -> L.Trainer:
    """The Trainer with its logger and callbacks, all writing inside `run_dir`; every
    checkpoint also carries the config (for eval and predict) and the random state (for
    an exact resume), and is written atomically. A signal stops it after a saved step."""
    cfg = composed.cfg
    # name="" and version="" put the events straight into the run folder, and with them
    # Lightning's checkpoint callback picks <run_dir>/checkpoints.
    logger = (
        build(composed, "logger", save_dir=run_dir, name="", version="") if cfg.logger else False
    )
    # A callback set to null (callbacks.lr_monitor=null) is switched off; with no logger
    # the learning rate has nowhere to go (Lightning would refuse to start).
    callbacks = [
        build(composed, f"callbacks.{name}") for name, node in (cfg.callbacks or {}).items() if node
    ]
    if not logger:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    # Without one of these callbacks, Lightning would add its own default one.
    defaults = {"enable_checkpointing": ModelCheckpoint, "enable_progress_bar": ProgressBar}
    injected = {
        flag: any(isinstance(c, kind) for c in callbacks)
        for flag, kind in defaults.items()
        if flag not in cfg.trainer
    }
    callbacks += [
        StoreConfig(OmegaConf.to_container(cfg), composed.choices, fold),
        RandomState(),
        GracefulStop(run_dir),
    ]
    return build(
        composed,
        "trainer",
        logger=logger,
        callbacks=callbacks,
        default_root_dir=run_dir,
        plugins=[AtomicCheckpointIO()],
        **injected,
    )


def check_placement(composed: Composed) -> None:
    """Refuse, in one line, a GPU that is not there and a precision the CPU cannot run
    (Lightning would stop deep inside, or quietly switch 16-mixed to bf16-mixed)."""
    trainer = composed.cfg.trainer
    accelerator, precision = str(trainer.get("accelerator", "auto")), str(trainer.get("precision"))
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        where = composed.source("trainer.accelerator")
        raise ConfigError(
            [
                f"trainer.accelerator={accelerator} ({where}): this machine has no GPU "
                "that torch can use; use trainer=default (the CPU)"
            ]
        )
    if precision in ("16-mixed", "16") and not on_gpu:
        where = composed.source("trainer.precision")
        raise ConfigError(
            [
                f"trainer.precision={precision} ({where}): float16 mixed precision "
                "needs a GPU; on the CPU use bf16-mixed or 32-true"
            ]
        )


def evaluate(run: Run) -> dict[str, Any]:
    """Test the best checkpoint (the current weights when none was kept) and collect metrics."""
    trainer, checkpoint = run.trainer, run.trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    (results,) = trainer.test(
        run.module, datamodule=run.datamodule, ckpt_path=best or None, verbose=False
    )
    metrics: dict[str, Any] = {key: float(value) for key, value in sorted(results.items())}
    if best:
        metrics["best_checkpoint"] = os.path.relpath(best, run.dir)
        metrics[f"best_{checkpoint.monitor}"] = float(checkpoint.best_model_score)
    metrics["epochs"] = trainer.current_epoch
    return metrics


def cross_validate(composed: Composed, folds: int) -> tuple[Path, dict[str, Any]]:
    """Train on each of `folds` folds, each a run in `fold_<k>/` of one parent folder, and
    summarise every metric as mean and standard deviation over the folds."""
    validate(composed)
    parent = claim_run_dir(run_root(composed)) if is_rank_zero() else run_root(composed)
    results = []
    for fold in range(folds):
        try:
            results.append(train(composed, fold, parent / f"fold_{fold}")[1])
        except ConfigError:
            if fold == 0 and is_rank_zero():
                _remove_empty(parent, Path(composed.cfg.runs_dir).expanduser())
            raise
    summary = summarise(results)
    if is_rank_zero():
        _write_json(parent / "cv_summary.json", summary)
    return parent, summary


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and (sample) standard deviation over folds of every numeric metric."""
    keys = [k for k, v in results[0].items() if isinstance(v, float)]
    summary: dict[str, Any] = {"folds": len(results)}
    for key in keys:
        values = np.array([r[key] for r in results])
        summary[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)),
            "values": values.tolist(),
        }
    return summary


def run_root(composed: Composed) -> Path:
    """<runs_dir>/<name>, the name defaulting to the data option (circles, diabetes, csv)."""
    cfg = composed.cfg
    return Path(cfg.runs_dir).expanduser() / (cfg.name or composed.choices["data"])


def claim_run_dir(parent: Path) -> Path:
    """Create `<parent>/<YYYY-MM-DD_HH-MM-SS>`; runs started in the same second get `_1`, `_2`...

    `mkdir` without `exist_ok` is atomic, so two processes never get the same folder.
    """
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        run_dir = parent / (stamp if attempt == 0 else f"{stamp}_{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"{parent}: 1000 runs started in the same second")


def _remove_empty(run_dir: Path, runs_dir: Path) -> None:
    """Remove a run folder that nothing was written to, and its parents up to `runs_dir`
    while they are empty (claiming the folder may have made them)."""
    shutil.rmtree(run_dir)
    for parent in run_dir.parents:
        if not parent.is_relative_to(runs_dir):
            return
        try:
            parent.rmdir()
        except OSError:  # not empty
            return


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
