"""Every activation the MLP offers trains; the others are not offered."""

from __future__ import annotations

import pytest
import torch

from litlab.model import ACTIVATIONS, MLP


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_offered_activation_builds_runs_and_learns(name):
    torch.manual_seed(0)
    net = MLP(2, 1, hidden=[4], activation=name)
    x = torch.randn(16, 2)
    out = net(x)
    assert out.shape == (16, 1) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_offered_list_includes_identity_and_leaves_out_what_breaks():
    assert {"identity", "linear", "sigmoid", "tanh", "relu", "gelu"} <= set(ACTIVATIONS)
    assert not {"glu", "threshold", "softmax", "multiheadattention"} & set(ACTIVATIONS)


def test_a_network_without_activations_is_one_linear_map():
    """The lesson's point: stacked linear layers are a single linear layer."""
    torch.manual_seed(0)
    net = MLP(2, 1, hidden=[8, 8], activation="identity")
    weights = [m for m in net if isinstance(m, torch.nn.Linear)]
    w, b = weights[0].weight, weights[0].bias
    for layer in weights[1:]:
        w, b = layer.weight @ w, layer.weight @ b + layer.bias
    x = torch.randn(5, 2)
    assert torch.allclose(net(x), x @ w.T + b, atol=1e-6)


def test_an_unknown_activation_lists_the_options():
    with pytest.raises(ValueError, match=r"activation='glu': choose one of .*identity"):
        MLP(2, 1, hidden=[4], activation="glu")
