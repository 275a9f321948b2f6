"""The recipe, top to bottom, in the order of the lesson's five steps: check the config,
prepare the data, seed and build the network (its loss and optimiser come with it),
then the Trainer repeats forward, loss, backward and step for the epochs; fit the
baselines, test the best checkpoint, write the summary. `run` picks a plain run, a resumed
one or a cross-validation."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from litlab import dashboard, loggers
from litlab.builders import build_data, build_module, build_trainer
from litlab.callbacks import StopOnSignal
from litlab.check import check
from litlab.checkpoints import CHECKPOINT_SECTION, check_fits, load_checkpoint, write_text
from litlab.config import CLI, ConfigError, SourcedConfig
from litlab.data.base import TensorDataModule, tensors
from litlab.distributed import from_rank_zero, is_rank_zero, slurm_job
from litlab.errors import Diverged, Interrupted, PeerLost, Stopped
from litlab.rundirs import (
    claim_run_dir,
    lock_run_dir,
    metric_spread,
    open_run_dir,
    read_status,
    release_run_dir,
    remove_empty,
    requeued_run,
    run_label,
    run_root,
    write_json,
    write_status,
)
from litlab.schema import LIGHTNING_COUNTERS, monitor_errors

# Lightning 2.6 on torch 2.13 warns about its own use of a deprecated torch API.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# With full-batch GD an epoch is one step: logging every n steps spans epochs, as meant.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval")
# Run folders are new, but for resume=, which continues in its own checkpoints/ on purpose.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def run(composed: SourcedConfig) -> tuple[Path, dict[str, Any]]:
    """One training run, a resumed one, or k of them when `data.folds` is set. A SLURM
    job's run stopped by SIGUSR1 requeues the job; the requeued job resumes it."""
    resuming = bool(composed.cfg.get("resume"))  # a stored config: checked when resumed
    folds = None if resuming else composed.cfg.data.get("folds")
    if folds:
        return cross_validate(composed, folds)
    # rank 0 looks: another machine may not see the runs folder
    requeued = "" if resuming else from_rank_zero(lambda: str(requeued_run(composed) or ""))
    if requeued:
        if is_rank_zero():
            print(f"litlab: SLURM job {slurm_job()}: resuming {requeued}", file=sys.stderr)
        composed.cfg.resume = requeued
    try:
        return resume(composed) if composed.cfg.get("resume") else train(composed)
    except Interrupted as exc:
        if exc.exit_code == 128 + signal.SIGUSR1 and slurm_job() and is_rank_zero():
            _requeue(slurm_job())
        raise


def _requeue(job: str) -> None:
    """Put this SLURM job back in the queue; it runs the same command, which resumes the
    run. Why not Lightning's auto-requeue: see builders._cluster."""
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except OSError as exc:
        print(f"litlab: could not requeue SLURM job {job}: {exc}", file=sys.stderr)
        return
    outcome = "requeued" if done.returncode == 0 else f"not requeued ({done.stderr.strip()})"
    print(f"litlab: SLURM job {job} {outcome}: scontrol requeue {job}", file=sys.stderr)


@dataclass
class PreparedRun:
    """A run ready to fit: its folder and the objects built from the config."""

    dir: Path
    trainer: L.Trainer
    module: L.LightningModule
    datamodule: TensorDataModule
    phase: str = "before the first step"  # what a signal interrupts, for its message


def prepare(
    composed: SourcedConfig,
    fold: int | None = None,
    run_dir: Path | None = None,
    signals: StopOnSignal | None = None,
    resume_from: tuple[Path, dict[str, Any] | None] | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> PreparedRun:
    """Everything before the first step, in the lesson's order; a config error stops it
    before a folder is made. A signal while the folder is claimed waits for its
    config.yaml (`signals`); `resume_from` (a checkpoint, and its weights where read) must fit.
    `callbacks` join the configured ones (a search trial's pruning callback)."""
    cfg = check(composed).cfg
    datamodule = build_data(composed, fold)  # 1. prepare the data
    L.seed_everything(cfg.seed, verbose=False)  # the seed fixes the network's first weights
    module = build_module(composed, datamodule)  # 2-4. network, loss, optimiser
    errors = monitor_errors(composed, module.logged_metrics())
    if errors:
        raise ConfigError(errors)
    path, weights = resume_from or (None, None)
    if path is not None and weights is not None:  # read where the run folder is (rank 0's)
        check_fits(module, weights, path)
    with signals.held() if signals else contextlib.nullcontext():
        new = run_dir is None or not run_dir.exists()
        run_dir = open_run_dir(composed, run_dir)
        try:
            steps = len(datamodule.train_dataloader())  # the logging interval scales with them
            trainer = build_trainer(composed, run_dir, fold, callbacks, steps)  # 5. the epochs
        except BaseException:
            if new:  # nothing was written yet
                remove_empty(run_dir, Path(cfg.runs_dir).expanduser())
            raise
        if is_rank_zero():  # resolved: the stored config is plain data
            write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return PreparedRun(run_dir, trainer, module, datamodule)


def train(
    composed: SourcedConfig,
    fold: int | None = None,
    run_dir: Path | None = None,
    resume_from: tuple[Path, dict[str, Any] | None] | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> tuple[Path, dict[str, Any]]:
    """Train (from the checkpoint `resume_from`, when resuming) and test the configured
    job in its run folder (`run_dir`, or a new one); return the folder and the metrics.
    `callbacks` join the configured ones (a search trial's pruning callback).
    From the folder's claim to its metrics.json, a signal ends it with the status
    `interrupted` and the exit code 128 + the signal."""
    job = None
    with StopOnSignal() as signals:
        try:
            job = prepare(composed, fold, run_dir, signals, resume_from, callbacks)
            signals.raise_pending()  # one that came while the folder was claimed
            return _fit_and_test(job, composed, resume_from and resume_from[0], signals)
        except Stopped as stop:
            exc = _interrupted(job, stop)
            if job is not None:
                with signals.held():
                    _record_stop(job.dir, exc)
            raise exc from None
        finally:
            if job is not None:
                release_run_dir(job.dir)


def _fit_and_test(
    job: PreparedRun, composed: SourcedConfig, checkpoint: Path | None, signals: StopOnSignal
) -> tuple[Path, dict[str, Any]]:
    trainer, module, datamodule = job.trainer, job.module, job.datamodule
    if hasattr(datamodule, "report"):  # what a table became: printed, saved in the folder
        datamodule.report(job.dir)
    if checkpoint is None:
        dashboard.log_start(trainer, composed, datamodule)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
    except (Diverged, Interrupted, OSError) as exc:  # OSError: a file that could not be written
        _record_stop(job.dir, exc)
        raise
    except RuntimeError as exc:
        if trainer.world_size == 1 or not _collective_failed(exc):
            raise
        lost = PeerLost(str(exc).splitlines()[0][:300], str(job.dir))
        _record_stop(job.dir, lost)
        raise lost from None
    job.phase = "while the baselines were fitted"
    scores = datamodule.baselines() if hasattr(datamodule, "baselines") else {}
    job.phase = "during the test"
    metrics = test(job) | scores | split_sizes(datamodule)
    job.phase = "while the summary was written"
    dashboard.log_hparams(trainer, composed, metrics)
    with signals.held():  # finished is finished: a signal now changes nothing
        write_status(job.dir, "finished", **metrics)
        for logger in trainer.loggers:  # baselines and hparams came after Lightning's close
            loggers.finish(logger)
    return job.dir, {"status": "finished", **metrics}


def split_sizes(datamodule: TensorDataModule) -> dict[str, int]:
    """The rows of the validation and test splits: one test row is the least difference
    in accuracy a run can show, and a small validation split is easy to fit by search."""
    sizes = {}
    for split in ("val", "test"):
        found = tensors(datamodule, split)
        if found is None:  # streamed (images): the loader's dataset, which samplers shard
            found = (getattr(getattr(datamodule, f"{split}_dataloader")(), "dataset", None),)
        if hasattr(found[0], "__len__"):
            sizes[f"{split}_rows"] = len(found[0])
    return sizes


def _collective_failed(exc: RuntimeError) -> bool:
    """Whether torch.distributed raised `exc`: gloo raises plain RuntimeErrors that
    name it (a peer's connection reset, a wait past the process group's timeout)."""
    import torch.distributed as dist

    return isinstance(exc, dist.DistError) or any(w in str(exc) for w in ("gloo", "NCCL"))


def _interrupted(job: PreparedRun | None, stop: Stopped) -> Interrupted:
    """The Interrupted to report for a signal outside the training loop: what to run next
    depends on whether a checkpoint was kept."""
    name, code = signal.Signals(stop.signum).name, 128 + stop.signum
    if job is None:
        return Interrupted(name, code, -1, "", "before its run folder was made")
    kept = (job.dir / "checkpoints" / "last.ckpt").is_file()
    # in training only a second Ctrl-C comes here (GracefulStop takes the first)
    phase = "in the middle of a training step" if job.trainer.training else job.phase
    return Interrupted(name, code, 0 if kept else -1, str(job.dir), phase)


def test(job: PreparedRun) -> dict[str, Any]:
    """Test the best checkpoint (the current weights when none was kept). Beside the
    best monitored value: the step it came from and the last one, for the summary to say
    when the steps after the best overfit."""
    trainer, checkpoint = job.trainer, _best_checkpoint(job.trainer)
    best = checkpoint.best_model_path if checkpoint is not None else ""
    best = trainer.strategy.broadcast(best)  # rank 0's file; the others name it alike
    final = trainer.callback_metrics.get(checkpoint.monitor) if checkpoint is not None else None
    best_step = None
    if best:
        weights, best_step = _rank_zero_weights(trainer, Path(best))
        job.module.load_state_dict(weights)
    (results,) = trainer.test(job.module, datamodule=job.datamodule, verbose=False)
    metrics: dict[str, Any] = {key: float(value) for key, value in sorted(results.items())}
    if best:
        # ModelCheckpoint keeps its folder with links resolved
        metrics["best_checkpoint"] = os.path.relpath(best, os.path.realpath(job.dir))
        metrics[f"best_{checkpoint.monitor}"] = float(checkpoint.best_model_score)
        metrics["best_step"] = best_step
        if final is not None:
            metrics[f"final_{checkpoint.monitor}"] = float(final)
    metrics["epochs"] = trainer.current_epoch
    metrics["steps"] = trainer.global_step
    return metrics


def _best_checkpoint(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The checkpoint callback that keeps the best weights by a metric (callbacks.last
    keeps the newest step)."""
    return next(
        (c for c in trainer.checkpoint_callbacks if c.monitor not in LIGHTNING_COUNTERS), None
    )


def _rank_zero_weights(trainer: L.Trainer, path: Path) -> tuple[dict[str, Any], int]:
    """The weights of rank 0's checkpoint `path` and the step they were saved at, sent to
    every rank. Why not `trainer.test(ckpt_path=...)`: it reads the file on every rank,
    and the other machines of a multi-node run without a shared file system have no such
    file."""
    found = None
    if trainer.is_global_zero:
        checkpoint = load_checkpoint(path)
        found = checkpoint["state_dict"], int(checkpoint["global_step"])
    return trainer.strategy.broadcast(found)


def _record_stop(run_dir: Path, exc: Exception) -> None:
    """metrics.json for a run that stopped early: why, and the checkpoint to go on from.
    On a full disk this cannot be written either; the error that stopped the run is the
    one to report then."""
    status = {Diverged: "diverged", Interrupted: "interrupted"}.get(type(exc), "failed")
    with contextlib.suppress(OSError):
        write_status(run_dir, status, error=str(exc))


def resume(composed: SourcedConfig) -> tuple[Path, dict[str, Any]]:
    """Continue the run in folder `resume` from its last.ckpt, in the same folder and
    TensorBoard run; a finished run goes on only if trainer.max_epochs was raised. Rank 0
    reads the folder (other machines may have none) and tells the others the fold."""
    run_dir = Path(composed.cfg.resume).expanduser()
    last = run_dir / "checkpoints" / "last.ckpt"
    weights: dict[str, Any] | None = None

    def read_fold() -> int | None:
        nonlocal weights
        if is_rank_zero():  # before reading its state: another process may be writing it
            lock_run_dir(run_dir)
        checkpoint = _resumable(composed, run_dir, last)
        weights = checkpoint["state_dict"]
        return checkpoint[CHECKPOINT_SECTION][
            "fold"
        ]  # a fold of a cross-validation trains on its own split

    try:
        fold = from_rank_zero(read_fold)  # on the other machines weights stay None
        return train(composed, fold, run_dir, (last, weights))
    finally:
        release_run_dir(run_dir)


def _resumable(composed: SourcedConfig, run_dir: Path, last: Path) -> dict[str, Any]:
    """The checkpoint to resume from, refused when missing or when the run is done."""
    cfg = composed.cfg
    if not last.is_file():
        raise ConfigError(
            [f"resume={cfg.resume} ({CLI}): no checkpoints/last.ckpt there to resume"]
        )
    checkpoint = load_checkpoint(last)
    done = checkpoint["epoch"] + 1
    finished = read_status(run_dir) == "finished"  # not stopped by a signal, a crash or a kill
    if finished and cfg.trainer.max_epochs is not None and done >= cfg.trainer.max_epochs:
        raise ConfigError(
            [
                f"resume={cfg.resume} ({CLI}): that run finished its {done} epochs; to "
                f"train it further raise trainer.max_epochs (e.g. trainer.max_epochs={2 * done})"
            ]
        )
    return checkpoint


def cross_validate(composed: SourcedConfig, folds: int) -> tuple[Path, dict[str, Any]]:
    """Train on each of `folds` folds, each a run in `fold_<k>/` of one parent folder, and
    summarise every metric as mean and standard deviation over the folds."""
    check(composed)  # before the parent folder
    root = run_root(composed)
    parent = claim_run_dir(root, run_label(composed.words)) if is_rank_zero() else root
    results = []
    try:
        for fold in range(folds):
            try:
                results.append(train(composed, fold, parent / f"fold_{fold}")[1])
            except ConfigError:
                if fold == 0:
                    remove_empty(parent, Path(composed.cfg.runs_dir).expanduser())
                raise
        summary = {"folds": len(results), **metric_spread(results)}
        rows = [r["test_rows"] for r in results if "test_rows" in r]
        if rows:  # each row is tested once: one row apart is 1/sum in mean accuracy
            summary["test_rows"] = sum(rows)
        write_json(parent / "cv_summary.json", summary)
    finally:
        release_run_dir(parent)
    return parent, summary


if __name__ == "__main__":  # python -m litlab.train WORDS, or python src/litlab/train.py WORDS
    from litlab.cli import command

    command(["train", *sys.argv[1:]])
