"""LightningModules: the learning loop (forward, loss, backward, step) around a network.

Each knows its task: its loss and metrics, the columns it adds to predictions, and the
pictures it draws of what it learned. Generic code (the dashboard, predict) asks them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
)
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

from litlab import figures
from litlab.data.base import tensors
from litlab.errors import Diverged
from litlab.optim import OptimizerFactory, SchedulerFactory, lr_scheduler_config

if TYPE_CHECKING:
    from litlab.data.base import TensorDataModule

Batch = tuple[Tensor, Tensor]
Snapshot = tuple[str, Callable[[], Figure]]  # a picture's name, and how to draw it later


class _Supervised(L.LightningModule):
    """What every task shares: the step, logging, evaluation and the optimiser.

    `optimizer` and `scheduler` are partials from the config; `configure_optimizers`
    calls them with this module's parameters, and `scheduler_options` (interval,
    frequency, monitor) tell Lightning when to step the scheduler.
    """

    task: str

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None,
        scheduler_options: dict[str, Any] | None,
        criterion: nn.Module,
        metrics: MetricCollection,
    ):
        super().__init__()
        self.net, self.criterion = net, criterion
        self.optimizer, self.scheduler = optimizer, scheduler
        self.scheduler_options = scheduler_options or {}
        self.metrics = nn.ModuleDict({s: metrics.clone(prefix=f"{s}/") for s in ("val", "test")})
        self.metric_names = ["loss", *metrics.keys()]
        # A row-weighted mean, so the loss over DDP shards of unequal size is exact.
        self.mean_loss = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    def forward(self, x: Tensor) -> Tensor:  # x: (B, ...) -> (B, outputs): logits or values
        return self.net(x)

    def training_step(self, batch: Batch) -> Tensor:
        x, y = batch
        out = self(x)
        loss = self.criterion(out, y)  # DivergenceCheck notes one that is not finite
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

    def logged_metrics(self) -> set[str]:
        """What a callback or a schedule may monitor: what each validation logs. (The
        training metrics are logged every log_every_n_steps steps only, so a checkpoint
        due at a validation could find none, and Lightning would stop the run.)"""
        return {f"val/{name}" for name in self.metric_names}

    def validation_step(self, batch: Batch) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Batch, stage: str) -> None:
        x, y = batch
        out = self(x)
        # A DDP rank with no row gets an empty batch: it updates nothing (torchmetrics
        # refuses empty tensors), yet logs, so it joins the gathering of every metric.
        if len(y):
            self.mean_loss[stage].update(self.criterion(out, y), weight=len(y))
            self.metrics[stage].update(*self._for_metrics(out, y))
        self.log(f"{stage}/loss", self.mean_loss[stage])
        self.log_dict(self.metrics[stage])

    def _for_metrics(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        config = lr_scheduler_config(self.scheduler, optimizer, self.scheduler_options)
        return {"optimizer": optimizer, "lr_scheduler": config}

    def prediction_columns(self, x: Tensor) -> dict[str, np.ndarray]:
        """What `predict` adds to each input row."""
        raise NotImplementedError

    def snapshot(self, datamodule: TensorDataModule) -> Snapshot | None:  # noqa: ARG002
        """A picture of the network now, taken during training for the TensorBoard slider
        (cheap: the drawing is deferred), or None when the task has none."""
        return None

    def final_figures(self, datamodule: TensorDataModule) -> dict[str, Figure]:
        """Pictures of what the network learned, drawn once testing is done."""
        raise NotImplementedError

    @torch.no_grad()
    def _outputs(self, x: Tensor) -> Tensor:
        return self.predict(x.to(self.device)).cpu()


class ClassifierModule(_Supervised):
    """Classification into `num_classes` classes, one module for both kinds.

    Two classes: one logit per row, binary cross-entropy (the lesson's sigmoid + BCELoss,
    computed stably in one step), accuracy and AUROC. More: a logit per class,
    cross-entropy, accuracy and macro F1.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_options: dict[str, Any] | None = None,
        num_classes: int = 2,
    ):
        self.binary = num_classes == 2
        if self.binary:
            metrics = MetricCollection(
                {"acc": BinaryAccuracy(), "auroc": BinaryAUROC(), "f1": BinaryF1Score()}
            )
            criterion: nn.Module = nn.BCEWithLogitsLoss()
        else:
            metrics = MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes, average="micro"),
                    "f1": MulticlassF1Score(num_classes, average="macro"),
                }
            )
            criterion = nn.CrossEntropyLoss()
        super().__init__(net, optimizer, scheduler, scheduler_options, criterion, metrics)
        self.task = "binary" if self.binary else "multiclass"
        self.num_classes = num_classes

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

    @torch.no_grad()
    def prediction_columns(self, x: Tensor, per_class: bool = False) -> dict[str, np.ndarray]:
        """The class, and the probability of class 1 (two classes) or of the predicted
        class (more); with `per_class`, also `probabilities` (B, classes)."""
        proba = self.predict_proba(x)
        shown = proba.ravel() if self.binary else proba.max(dim=1).values
        columns = {"prediction": self.predict(x).numpy().ravel(), "probability": shown.numpy()}
        if per_class:
            columns["probabilities"] = (
                torch.cat([1 - proba, proba], 1) if self.binary else proba
            ).numpy()
        return columns

    def snapshot(self, datamodule: TensorDataModule) -> Snapshot | None:
        """P(class 1) over the plane of the training points, when they are 2-D points."""
        if not self._on_plane(datamodule):
            return None
        x, y = (t.cpu().numpy() for t in datamodule.train)
        p = self._proba_on(figures.plane(x))
        return "boundary", lambda: figures.decision_boundary(lambda _: p, x, y.ravel())

    def _on_plane(self, datamodule: TensorDataModule) -> bool:
        return (
            self.binary
            and datamodule.num_features == 2
            and tensors(datamodule, "train") is not None
        )

    def _proba_on(self, points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = torch.from_numpy(points).to(self.device)
            return self.predict_proba(inputs).cpu().numpy().ravel()

    def final_figures(self, datamodule: TensorDataModule) -> dict[str, Figure]:
        """The decision boundary (2-D points), or the test images with their predicted
        labels, the confusion matrix and a convolutional network's first filters."""
        if self._on_plane(datamodule):
            x, y = (t.cpu().numpy() for t in datamodule.train)
            return {"boundary": figures.decision_boundary(self._proba_on, x, y.ravel())}
        if tensors(datamodule, "test") is None:  # a data module with loaders only
            return {}
        x, y = datamodule.test
        predicted, actual = self._outputs(x).numpy().ravel(), y.cpu().numpy().ravel()
        matrix = confusion_matrix(actual, predicted, labels=range(self.num_classes))
        names = list(getattr(datamodule, "classes", None) or [])  # a table's class names
        pictures = {"confusion_matrix": figures.confusion(matrix, names or None)}
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
    """`module=auto`: a stand-in that `build_module` replaces with the module the data
    names for its task (`datamodule.module_target`); never called itself."""
    raise TypeError("module=auto is resolved by litlab.builders.build_module, not built")


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
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_options: dict[str, Any] | None = None,
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
        predicted = self._outputs(x).numpy().ravel()
        actual = self._units(y.to(self.target_mean.device)).cpu().numpy().ravel()
        return {
            "predicted_vs_actual": figures.predicted_vs_actual(actual, predicted),
            "residuals": figures.residuals(actual, predicted),
        }
