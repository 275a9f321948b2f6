"""Networks: plain `nn.Module`s; the LightningModules in `module.py` train them."""

from __future__ import annotations

import itertools
import math

from torch import Tensor, nn

# torch.nn's activations by lower-case name, less those that take arguments or change the
# width (tests/test_activations.py tries each); identity: without activations a network is
# linear, however deep (one of the lesson's points).
UNFIT = {"GLU", "LogSoftmax", "MultiheadAttention", "Softmax", "Softmax2d", "Softmin", "Threshold"}
ACTIVATIONS: dict[str, type[nn.Module]] = {
    name.lower(): getattr(nn, name) for name in nn.modules.activation.__all__ if name not in UNFIT
} | {"identity": nn.Identity, "linear": nn.Identity}


class MLP(nn.Sequential):
    """Linear layers with an activation between them; the last outputs logits or values.
    `hidden=[4], activation="sigmoid"` is the lesson's 2-4-1 network."""

    def __init__(
        self, in_features: int, out_features: int, hidden: list[int], activation: str = "relu"
    ):
        if activation.lower() not in ACTIVATIONS:
            choices = ", ".join(sorted(ACTIVATIONS))
            raise ValueError(f"activation={activation!r}: choose one of {choices}")
        if any(width < 1 for width in hidden):
            raise ValueError(f"hidden={list(hidden)}: every width must be >= 1")
        layers: list[nn.Module] = []  # in the lesson's order, so a seed gives its weights
        for n_in, n_out in itertools.pairwise([in_features, *hidden, out_features]):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation.lower()]()]
        super().__init__(*layers[:-1])

    def forward(self, x: Tensor) -> Tensor:  # (B, in_features) or images (B, C, H, W)
        return super().forward(x.flatten(1))  # -> (B, out_features)


class CNN(nn.Module):
    """A small network for square images: per entry of `channels` a convolution (same
    padding), ReLU and, with `pooling`, 2x2 max-pooling; then dropout and a linear layer."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        channels: list[int],
        kernel_size: int = 3,
        pooling: bool = True,
        dropout: float = 0.0,
        in_channels: int = 1,
    ):
        super().__init__()
        side = math.isqrt(in_features // in_channels)
        if side * side * in_channels != in_features:
            raise ValueError(
                f"in_features={in_features}: a CNN needs square images of {in_channels} channel(s)"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}: must be odd (same padding)")
        self.in_shape = (in_channels, side)
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise([in_channels, *channels]):
            layers += [nn.Conv2d(n_in, n_out, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            layers += [nn.MaxPool2d(2)] if pooling else []
        self.features = nn.Sequential(*layers)
        side = side >> len(channels) if pooling else side  # halved by each pooling
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1] * side * side, out_features)
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W), or (B, C*H*W) -> (B, out_features)
        channels, side = self.in_shape
        return self.head(self.features(x.reshape(len(x), channels, side, side)))


class Timm(nn.Module):
    """A timm network by name (`model.name=resnet18`), random unless `pretrained`."""

    def __init__(
        self,
        in_features: int,  # noqa: ARG002 (the recipe gives every network the data's sizes)
        out_features: int,
        name: str,
        pretrained: bool = False,
        in_channels: int = 3,
    ):
        import timm  # optional: the check says what to install when it is missing

        super().__init__()
        if not timm.is_model(name):  # timm's own error is a RuntimeError, not one line
            raise ValueError(f"name={name!r}: no such timm model (timm.list_models() has them)")
        self.net = timm.create_model(
            name, pretrained=pretrained, num_classes=out_features, in_chans=in_channels
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, out_features)
        return self.net(x)
