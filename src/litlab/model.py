"""Networks: plain `nn.Module`s; the LightningModules in `module.py` train them."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn


def _elementwise(name: str) -> bool:
    """Whether torch.nn's activation `name` can sit between two Linear layers as it is:
    built with no arguments (Threshold needs two) and keeping the width (GLU halves it;
    the softmaxes and attention are not elementwise)."""
    # fork_rng: RReLU draws random slopes; an import must not move the seeded generator,
    # or a seed would give other first weights depending on when litlab.model is imported
    with torch.random.fork_rng(devices=[]):
        try:
            layer = getattr(nn.modules.activation, name)()
            return layer(torch.zeros(2, 4)).shape == (2, 4)
        except (TypeError, RuntimeError):
            return False


# torch.nn's activations by lower-case name (sigmoid, tanh, relu, gelu, silu, elu, ...),
# and none: a network without activations is linear, however deep (one of the lesson's points).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    name.lower(): getattr(nn.modules.activation, name)
    for name in nn.modules.activation.__all__
    if name not in ("MultiheadAttention", "Softmax", "Softmax2d", "LogSoftmax", "Softmin")
    and _elementwise(name)
} | {"identity": nn.Identity, "linear": nn.Identity}


class MLP(nn.Sequential):
    """Linear layers of the given widths with an activation between them.

    The last layer has no activation: it outputs logits (classification) or values
    (regression). `hidden=[4], activation="sigmoid"` is the lesson's 2-4-1 network.
    """

    def __init__(
        self, in_features: int, out_features: int, hidden: list[int], activation: str = "relu"
    ):
        if activation.lower() not in ACTIVATIONS:
            raise ValueError(
                f"activation={activation!r}: choose one of {', '.join(sorted(ACTIVATIONS))}"
            )
        if any(width < 1 for width in hidden):
            raise ValueError(f"hidden={list(hidden)}: every width must be >= 1")
        widths = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
            # Built in the lesson's order (Linear, Linear, ...) so a seed gives its weights.
            layers.append(nn.Linear(n_in, n_out))
            if i < len(hidden):
                layers.append(ACTIVATIONS[activation.lower()]())
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (B, in_features) or images (B, C, H, W)
        return super().forward(x.flatten(1))  # -> (B, out_features)


class CNN(nn.Module):
    """A small convolutional network for square images: per entry of `channels` a
    convolution (same padding), ReLU and, with `pooling`, 2x2 max-pooling; then dropout
    and one linear layer to `out_features` logits."""

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
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise([in_channels, *channels]):
            layers += [nn.Conv2d(n_in, n_out, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            if pooling:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1] * side * side, out_features)
        )
        self.in_shape = (in_channels, math.isqrt(in_features // in_channels))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W), or (B, C*H*W) -> (B, out_features)
        side = self.in_shape[1]
        return self.head(self.features(x.reshape(len(x), self.in_shape[0], side, side)))


class Timm(nn.Module):
    """Any network of timm by name (`model=timm model.name=resnet18`), made for the data's
    channels and classes. Weights are random unless `pretrained`: timm then loads its own,
    downloading them once into its cache. timm needs torchvision (the `vision` extra)."""

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
        if not timm.is_model(name):
            raise ValueError(
                f'name={name!r}: no such timm model; python -c "import timm; '
                f"print(timm.list_models('{name[:3]}*'))\" lists some"
            )
        self.net = timm.create_model(
            name, pretrained=pretrained, num_classes=out_features, in_chans=in_channels
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, out_features)
        return self.net(x)
