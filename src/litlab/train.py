"""The recipe, top to bottom, in the lesson's order: check the config, prepare the data,
seed and build the network (with its loss and optimiser), let the Trainer repeat the
steps; fit the baselines, test the best checkpoint, write the summary."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from litlab import dashboard, loggers, resuming, stops
from litlab.builders import build_data, build_module, build_trainer
from litlab.callbacks import SignalStop
from litlab.check import check
from litlab.checkpoints import check_fits, load_checkpoint, write_text
from litlab.config import ConfigError, SourcedConfig
from litlab.data.base import TensorDataModule, tensors
from litlab.distributed import is_rank_zero
from litlab.errors import Stopped
from litlab.resuming import ResumeFrom
from litlab.rundirs import (
    claim_run_dir,
    metric_spread,
    open_run_dir,
    release_run_dir,
    remove_empty,
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
    """One training run, a resumed one (`resume`, from its folder's last.ckpt, in the same
    folder and TensorBoard run), or k of them when `data.folds` is set."""
    resumed = bool(composed.cfg.get("resume"))  # a stored config: checked when resumed
    folds = None if resumed else composed.cfg.data.get("folds")
    if folds:
        return cross_validate(composed, folds)
    if not resumed:
        resuming.resume_requeued(composed)
    with resuming.requeue_on_usr1():
        if not composed.cfg.get("resume"):
            return train(composed)
        with resuming.last_checkpoint(composed) as (run_dir, fold, resume_from):
            return train(composed, fold, run_dir, resume_from)


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
    signals: SignalStop | None = None,
    resume_from: ResumeFrom | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> PreparedRun:
    """Everything before the first step; a config error stops it before a folder is made,
    a signal while the folder is claimed waits for its config.yaml (`signals`). The
    weights of `resume_from` must fit; `callbacks` join the configured ones."""
    cfg = check(composed).cfg
    datamodule = build_data(composed, fold)  # 1. prepare the data
    L.seed_everything(cfg.seed, verbose=False)  # the seed fixes the network's first weights
    module = build_module(composed, datamodule)  # 2-4. network, loss, optimiser
    errors = monitor_errors(composed, module.logged_metrics())
    if errors:
        raise ConfigError(errors)
    if resume_from and resume_from[1] is not None:  # read where the run folder is (rank 0)
        check_fits(module, resume_from[1], resume_from[0])
    with signals.held() if signals else contextlib.nullcontext():
        new = run_dir is None or not run_dir.exists()
        run_dir = open_run_dir(composed, run_dir)
        try:
            steps = len(datamodule.train_dataloader())  # the logging interval scales with them
            trainer = build_trainer(composed, run_dir, fold, callbacks, steps, signals)  # 5.
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
    resume_from: ResumeFrom | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> tuple[Path, dict[str, Any]]:
    """Train (from `resume_from`) and test the job in its run folder (`run_dir`, or a new
    one); the folder and the metrics. From the folder's claim to its metrics.json, a
    signal ends it with the status `interrupted` and the exit code 128 + the signal."""
    job = None
    with SignalStop() as signals:
        try:
            job = prepare(composed, fold, run_dir, signals, resume_from, callbacks)
            signals.raise_pending()  # one that came while the folder was claimed
            return _fit_and_test(job, composed, resume_from and resume_from[0], signals)
        except Stopped as stop:
            if job is None:
                raise stops.interrupted(stop, None, "") from None
            # in training only a second Ctrl-C comes here (SignalStop takes the first)
            phase = "in the middle of a training step" if signals.training else job.phase
            exc = stops.interrupted(stop, job.dir, phase)
            with signals.held():
                stops.record(job.dir, exc)
            raise exc from None
        finally:
            if job is not None:
                release_run_dir(job.dir)


def _fit_and_test(
    job: PreparedRun, composed: SourcedConfig, checkpoint: Path | None, signals: SignalStop
) -> tuple[Path, dict[str, Any]]:
    trainer, module, datamodule = job.trainer, job.module, job.datamodule
    if hasattr(datamodule, "report"):  # what a table became: printed, saved in the folder
        datamodule.report(job.dir)
    if checkpoint is None:
        dashboard.log_start(trainer, composed, datamodule)
    with stops.recorded(job.dir, trainer.world_size):  # why it stopped, if it did
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
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
    in accuracy a run can show; a small validation split is easy to fit by search."""
    sizes = {}
    for split in ("val", "test"):
        found = tensors(datamodule, split)
        if found is None:  # streamed (images): the loader's dataset, which samplers shard
            found = (getattr(getattr(datamodule, f"{split}_dataloader")(), "dataset", None),)
        if hasattr(found[0], "__len__"):
            sizes[f"{split}_rows"] = len(found[0])
    return sizes


def test(job: PreparedRun) -> dict[str, Any]:
    """Test the best checkpoint (else the current weights); with the best monitored value,
    its step and the last value, for the summary to say when later steps overfit."""
    trainer = job.trainer
    checkpoint = next(  # callbacks.last keeps the newest step, not the best
        (c for c in trainer.checkpoint_callbacks if c.monitor not in LIGHTNING_COUNTERS), None
    )
    best = trainer.strategy.broadcast(checkpoint.best_model_path if checkpoint else "")
    final = trainer.callback_metrics.get(checkpoint.monitor) if checkpoint else None
    if best:  # rank 0 reads and sends: other machines may have no such file (so no ckpt_path)
        saved = load_checkpoint(best) if trainer.is_global_zero else {}
        weights, best_step = trainer.strategy.broadcast(
            (saved.get("state_dict"), saved.get("global_step"))
        )
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
    return metrics | {"epochs": trainer.current_epoch, "steps": trainer.global_step}


def cross_validate(composed: SourcedConfig, folds: int) -> tuple[Path, dict[str, Any]]:
    """A run for each fold in `fold_<k>/` of one parent folder; every metric's mean and
    standard deviation over the folds."""
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
