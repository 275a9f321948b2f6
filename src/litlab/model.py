"""Networks: plain `nn.Module`s; the LightningModules in `module.py` train them."""

from __future__ import annotations

import itertools

from torch import nn

# torch.nn's activations by lower-case name: sigmoid, tanh, relu, gelu, silu, elu, ...
ACTIVATIONS = {
    name.lower(): getattr(nn.modules.activation, name)
    for name in nn.modules.activation.__all__
    if name not in ("MultiheadAttention", "Softmax", "Softmax2d", "LogSoftmax", "Softmin")
}


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
        super().__init__(*layers)  # forward: (B, in_features) -> (B, out_features)
