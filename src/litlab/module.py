"""LightningModules: the learning loop (forward, loss, backward, step) around a network."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from litlab import optim


class ClassifierModule(L.LightningModule):
    """Binary classification: the network outputs one logit per row, trained with BCE.

    `optimizer` and `scheduler` are config nodes; the optimiser is built over this
    module's parameters in `configure_optimizers`.
    """

    def __init__(self, net: nn.Module, optimizer: dict[str, Any], scheduler: dict[str, Any] | None):
        super().__init__()
        self.net = net
        self.optimizer_cfg, self.scheduler_cfg = optimizer, scheduler
        # BCE on logits: the lesson's sigmoid + BCELoss, computed stably in one step.
        self.criterion = nn.BCEWithLogitsLoss()
        metrics = MetricCollection({"acc": BinaryAccuracy(), "auroc": BinaryAUROC()})
        self.metrics = nn.ModuleDict(
            {"val": metrics.clone(prefix="val/"), "test": metrics.clone(prefix="test/")}
        )
        # A row-weighted mean, so the loss over DDP shards of unequal size is exact.
        self.mean_loss = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    def forward(self, x: Tensor) -> Tensor:  # x: (B, features) -> logits (B, 1)
        return self.net(x)

    def predict_proba(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self(x))

    def predict(self, x: Tensor) -> Tensor:
        """The lesson's rule: class 1 where the probability is at least 0.5."""
        return (self.predict_proba(x) >= 0.5).long()

    def training_step(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        loss = self.criterion(self(x), y)
        # self.log costs about as much as a step of this small network, and Lightning
        # writes only every log_every_n_steps-th value: log just those.
        if (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor]) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor]) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        logits = self(x)
        self.mean_loss[stage].update(self.criterion(logits, y), weight=len(y))
        self.metrics[stage].update(torch.sigmoid(logits), y.int())
        self.log(f"{stage}/loss", self.mean_loss[stage])
        self.log_dict(self.metrics[stage])

    def configure_optimizers(self) -> dict[str, Any]:
        return optim.configure(self.optimizer_cfg, self.scheduler_cfg, self.parameters())
