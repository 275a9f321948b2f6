"""LightningModules: the learning loop (forward, loss, backward, step) around a network."""

from __future__ import annotations

from typing import Any, Literal, NoReturn

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    MulticlassAccuracy,
    MulticlassF1Score,
)
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from litlab import optim
from litlab.errors import Diverged

Batch = tuple[Tensor, Tensor]


class _Supervised(L.LightningModule):
    """What every task shares: the step, logging, evaluation and the optimiser.

    `optimizer` and `scheduler` are config nodes; the optimiser is built over this
    module's parameters in `configure_optimizers`.
    """

    task: str

    def __init__(
        self,
        net: nn.Module,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None,
        criterion: nn.Module,
        metrics: MetricCollection,
    ):
        super().__init__()
        self.net, self.criterion = net, criterion
        self.optimizer_cfg, self.scheduler_cfg = optimizer, scheduler
        self.metrics = nn.ModuleDict({s: metrics.clone(prefix=f"{s}/") for s in ("val", "test")})
        # A row-weighted mean, so the loss over DDP shards of unequal size is exact.
        self.mean_loss = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    def forward(self, x: Tensor) -> Tensor:  # x: (B, ...) -> (B, outputs): logits or values
        return self.net(x)

    def training_step(self, batch: Batch) -> Tensor:
        x, y = batch
        out = self(x)
        loss = self.criterion(out, y)
        if not torch.isfinite(loss):  # stop here: every later step would only spread it
            self._diverged("the loss", loss)
        # self.log costs about as much as a step of a small network, and Lightning
        # writes only every log_every_n_steps-th value: log just those.
        if (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", loss, sync_dist=True)  # the mean over DDP ranks
            for name, value in self._train_metrics(out.detach(), y).items():
                self.log(f"train/{name}", value, sync_dist=True)
        return loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: ARG002
        """Refuse to save weights that are not finite. A gradient that overflows with a
        finite loss spoils the weights in one step; the next step's loss shows it, but a
        checkpoint saved in between (a validation at that epoch's end) must not keep it.
        Checked here it costs nothing per step; every step's gradients cost 0.03-0.08 ms."""
        for name, weight in self.named_parameters():
            if not torch.isfinite(weight).all():
                self._diverged(f"weight {name}", weight[~torch.isfinite(weight)][0])

    def _diverged(self, what: str, value: Tensor) -> NoReturn:
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        raise Diverged(self.trainer.global_step, what, value.item(), lr)

    def _train_metrics(self, out: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Cheap metrics of the training batch, logged with the loss."""
        raise NotImplementedError

    def validation_step(self, batch: Batch) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Batch, stage: str) -> None:
        x, y = batch
        out = self(x)
        self.mean_loss[stage].update(self.criterion(out, y), weight=len(y))
        self.metrics[stage].update(*self._for_metrics(out, y))
        self.log(f"{stage}/loss", self.mean_loss[stage])
        self.log_dict(self.metrics[stage])

    def _for_metrics(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, Any]:
        return optim.configure(self.optimizer_cfg, self.scheduler_cfg, self.parameters())


class ClassifierModule(_Supervised):
    """Classification into `num_classes` classes, one module for both kinds.

    Two classes: one logit per row, binary cross-entropy (the lesson's sigmoid + BCELoss,
    computed stably in one step), accuracy and AUROC. More: a logit per class,
    cross-entropy, accuracy and macro F1.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None,
        num_classes: int = 2,
    ):
        self.binary = num_classes == 2
        if self.binary:
            metrics = MetricCollection({"acc": BinaryAccuracy(), "auroc": BinaryAUROC()})
            criterion: nn.Module = nn.BCEWithLogitsLoss()
        else:
            metrics = MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro"),
                    "f1": MulticlassF1Score(num_classes, average="macro"),
                }
            )
            criterion = nn.CrossEntropyLoss()
        super().__init__(net, optimizer, scheduler, criterion, metrics)
        self.task = "binary" if self.binary else "multiclass"

    def predict_proba(self, x: Tensor) -> Tensor:
        """P(class 1) (B, 1) for two classes; else the probability of each class (B, K)."""
        out = self(x)
        return torch.sigmoid(out) if self.binary else torch.softmax(out, dim=1)

    def predict(self, x: Tensor) -> Tensor:
        """The lesson's rule for two classes: class 1 where its probability is at least
        0.5; else the most probable class."""
        proba = self.predict_proba(x)
        return (proba >= 0.5).long() if self.binary else proba.argmax(dim=1)

    def _for_metrics(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return (torch.sigmoid(out), y.int()) if self.binary else (out.argmax(dim=1), y)

    def _train_metrics(self, out: Tensor, y: Tensor) -> dict[str, Tensor]:
        right = (
            (out >= 0) == (y >= 0.5) if self.binary else out.argmax(dim=1) == y
        )  # logit >= 0: p >= 0.5
        return {"acc": right.float().mean()}


LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}


class RegressorModule(_Supervised):
    """Regression on a (standardised) target; metrics in the target's own units.

    The network learns `(y - target_mean) / target_std`; both numbers are buffers, so
    they are saved in every checkpoint and `predict` answers in the target's units.
    """

    task = "regression"

    def __init__(
        self,
        net: nn.Module,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None,
        loss: Literal["mse", "l1", "huber"] = "mse",
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: choose one of {', '.join(LOSSES)}")
        metrics = MetricCollection(
            {
                "mse": MeanSquaredError(),
                "rmse": MeanSquaredError(squared=False),
                "mae": MeanAbsoluteError(),
                "r2": R2Score(),
            }
        )
        super().__init__(net, optimizer, scheduler, LOSSES[loss](), metrics)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def predict(self, x: Tensor) -> Tensor:
        return self._units(self(x))

    def _units(self, y: Tensor) -> Tensor:
        return y * self.target_std + self.target_mean

    def _for_metrics(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._units(out).flatten(), self._units(y).flatten()

    def _train_metrics(self, out: Tensor, y: Tensor) -> dict[str, Tensor]:
        return {"mae": (self._units(out) - self._units(y)).abs().mean()}
