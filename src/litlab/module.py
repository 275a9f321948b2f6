"""LightningModules, one per task type: the learning loop, loss, metrics and pictures."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix
from torch import Tensor, nn
from torchmetrics import AUROC, Accuracy, F1Score, MeanMetric, Metric, MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from litlab import figures
from litlab.data.base import tensors
from litlab.errors import Diverged
from litlab.optim import OptimizerFactory, SchedulerFactory

if TYPE_CHECKING:
    from litlab.data.base import TensorDataModule

Batch = tuple[Tensor, Tensor]
Snapshot = tuple[str, Callable[[], Figure]]  # a picture's name, and how to draw it later


class _Supervised(L.LightningModule):
    """What every task shares: the steps, logging, evaluation and the optimiser (the config's
    partials). A task adds `predict`, `_for_metrics`, `_train_metrics`, `prediction_columns`
    and `final_figures`."""

    task: str

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None,
        scheduler_options: dict[str, Any] | None,
        criterion: nn.Module,
        metrics: dict[str, Metric],
    ):
        super().__init__()
        self.net, self.criterion = net, criterion
        self.optimizer, self.scheduler = optimizer, scheduler
        self.scheduler_options = scheduler_options or {}
        collection = MetricCollection(metrics)
        self.metrics = nn.ModuleDict({s: collection.clone(prefix=f"{s}/") for s in ("val", "test")})
        # A row-weighted mean, so the loss over DDP shards of unequal size is exact.
        self.mean_loss = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    def forward(self, x: Tensor) -> Tensor:  # x: (B, ...) -> (B, outputs): logits or values
        return self.net(x)

    def training_step(self, batch: Batch) -> Tensor:
        x, y = batch
        out = self(x)
        loss = self.criterion(out, y)  # DivergenceCheck notes one that is not finite
        # Lightning writes every log_every_n_steps-th value, and self.log costs as much as a
        # small network's step: log just those (the means over DDP ranks).
        if (self.trainer.global_step + 1) % self.trainer.log_every_n_steps == 0:
            train = {f"train/{k}": v for k, v in self._train_metrics(out.detach(), y).items()}
            self.log_dict({"train/loss": loss, **train}, sync_dist=True)
        return loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: ARG002
        """Refuse weights that are not finite (an overflowing gradient, the loss still finite)."""
        for name, weight in self.named_parameters():
            bad = weight[~torch.isfinite(weight)]
            if len(bad):
                lr = self.trainer.optimizers[0].param_groups[0]["lr"]
                raise Diverged(self.trainer.global_step, f"weight {name}", bad[0].item(), lr)

    def logged_metrics(self) -> set[str]:
        """What a callback or a schedule may monitor: what each validation logs (train/* may
        be missing at a validation: it comes every log_every_n_steps steps)."""
        return {"val/loss", *self.metrics["val"].keys()}

    def validation_step(self, batch: Batch) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Batch, stage: str) -> None:
        x, y = batch
        out = self(x)
        # a DDP rank with no row updates nothing (torchmetrics refuses empty tensors), yet
        # logs, so it joins the gathering of every metric
        if len(y):
            self.mean_loss[stage].update(self.criterion(out, y), weight=len(y))
            self.metrics[stage].update(*self._for_metrics(out, y))
        self.log(f"{stage}/loss", self.mean_loss[stage])
        self.log_dict(self.metrics[stage])

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        schedule = {"scheduler": self.scheduler(optimizer), **self.scheduler_options}
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def snapshot(self, datamodule: TensorDataModule) -> Snapshot | None:  # noqa: ARG002
        """A picture of the network now, for TensorBoard's slider (drawn later), or None."""
        return None

    @torch.no_grad()
    def _outputs(self, x: Tensor | np.ndarray, how: Callable | None = None) -> np.ndarray:
        """`how` (by default `predict`) of `x` on this module's device, as a flat array."""
        return (how or self.predict)(torch.as_tensor(x).to(self.device)).cpu().numpy().ravel()


class ClassifierModule(_Supervised):
    """Two classes: one logit, binary cross-entropy (the lesson's sigmoid + BCELoss, stable),
    accuracy, AUROC and F1. More: a logit per class, cross-entropy, accuracy and macro F1."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_options: dict[str, Any] | None = None,
        num_classes: int = 2,
    ):
        self.binary, self.num_classes = num_classes == 2, num_classes
        self.task = kind = "binary" if self.binary else "multiclass"
        metrics = {
            "acc": Accuracy(kind, num_classes=num_classes, average="micro"),
            "f1": F1Score(kind, num_classes=num_classes, average="macro"),
        } | ({"auroc": AUROC(kind)} if self.binary else {})
        criterion = nn.BCEWithLogitsLoss() if self.binary else nn.CrossEntropyLoss()
        super().__init__(net, optimizer, scheduler, scheduler_options, criterion, metrics)

    def predict_proba(self, x: Tensor) -> Tensor:
        """P(class 1) (B, 1) for two classes; else the probability of each class (B, K)."""
        out = self(x)
        return torch.sigmoid(out) if self.binary else torch.softmax(out, dim=1)

    def predict(self, x: Tensor) -> Tensor:
        """The lesson's rule for two classes (class 1 where P >= 0.5), else the likeliest."""
        proba = self.predict_proba(x)
        return (proba >= 0.5).long() if self.binary else proba.argmax(dim=1)

    def _for_metrics(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return (torch.sigmoid(out), y.int()) if self.binary else (out.argmax(dim=1), y)

    def _train_metrics(self, out: Tensor, y: Tensor) -> dict[str, Tensor]:
        right = (out >= 0) == (y >= 0.5) if self.binary else out.argmax(dim=1) == y  # p >= 0.5
        return {"acc": right.float().mean()}

    @torch.no_grad()
    def prediction_columns(self, x: Tensor, per_class: bool = False) -> dict[str, np.ndarray]:
        """The class and its probability (of class 1, for two); `per_class`: every class's."""
        proba = self.predict_proba(x)
        every = torch.cat([1 - proba, proba], 1) if self.binary else proba
        shown = proba.ravel() if self.binary else proba.max(dim=1).values
        columns = {"prediction": self.predict(x).numpy().ravel(), "probability": shown.numpy()}
        return columns | ({"probabilities": every.numpy()} if per_class else {})

    def snapshot(self, datamodule: TensorDataModule) -> Snapshot | None:
        """P(class 1) over the plane of the training points, when they are 2-D points."""
        plane = self.binary and datamodule.num_features == 2
        if not plane or tensors(datamodule, "train") is None:
            return None
        x, y = (t.cpu().numpy() for t in datamodule.train)
        p = self._outputs(figures.plane(x), self.predict_proba)
        return "boundary", lambda: figures.decision_boundary(lambda _: p, x, y.ravel())

    def final_figures(self, datamodule: TensorDataModule) -> dict[str, Figure]:
        """The decision boundary (2-D points), or the test set's confusion matrix and more."""
        if boundary := self.snapshot(datamodule):
            return {boundary[0]: boundary[1]()}
        if tensors(datamodule, "test") is None:  # a data module with loaders only
            return {}
        x, y = datamodule.test
        predicted, actual = self._outputs(x), y.cpu().numpy().ravel()
        matrix = confusion_matrix(actual, predicted, labels=range(self.num_classes))
        names = getattr(datamodule, "classes", None)  # a table's class names
        pictures = {"confusion_matrix": figures.confusion(matrix, names)}
        if x.dim() == 4:  # images (B, C, H, W)
            shown = np.argsort(predicted == actual, kind="stable")[:32]  # the mistakes first
            pictures["test_images"] = figures.image_grid(
                x[shown, 0].cpu().numpy(), predicted[shown], actual[shown]
            )
        convolutions = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        if convolutions:
            pictures["filters"] = figures.filters(convolutions[0].weight.detach().cpu().numpy())
        return pictures


def auto(**_: Any) -> NoReturn:
    """`module=auto`: a stand-in `build_module` replaces with the data's module; never called."""
    raise TypeError("module=auto is resolved by litlab.builders.build_module, not built")


LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}


class RegressorModule(_Supervised):
    """Regression on a standardised target, `(y - target_mean) / target_std` (buffers, saved
    in each checkpoint): the metrics and `predict` are in the target's own units."""

    task = "regression"

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_options: dict[str, Any] | None = None,
        loss: Literal["mse", "l1", "huber"] = "mse",  # the check refuses others
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ):
        metrics = {"mse": MeanSquaredError(), "rmse": MeanSquaredError(squared=False)}
        metrics |= {"mae": MeanAbsoluteError(), "r2": R2Score()}
        super().__init__(net, optimizer, scheduler, scheduler_options, LOSSES[loss](), metrics)
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

    @torch.no_grad()
    def prediction_columns(self, x: Tensor) -> dict[str, np.ndarray]:
        return {"prediction": self.predict(x).numpy().ravel()}

    def final_figures(self, datamodule: TensorDataModule) -> dict[str, Figure]:
        """Predicted against actual, and the residuals, on the test set."""
        if tensors(datamodule, "test") is None:  # a data module with loaders only
            return {}
        x, y = datamodule.test
        actual = self._units(y.to(self.target_mean.device)).cpu().numpy().ravel()
        predicted = self._outputs(x)
        return {
            "predicted_vs_actual": figures.predicted_vs_actual(actual, predicted),
            "residuals": figures.residuals(actual, predicted),
        }
