"""The MLP and the classifier's lesson-style predict."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import pytest
import torch
from torch import nn

from litlab.model import MLP
from litlab.module import ClassifierModule


def test_lessons_network_shape():
    net = MLP(2, 1, hidden=[4], activation="sigmoid")
    assert [type(m) for m in net] == [nn.Linear, nn.Sigmoid, nn.Linear]
    assert (net[0].in_features, net[0].out_features, net[2].out_features) == (2, 4, 1)


def test_depth_and_activation_from_config():
    net = MLP(10, 1, hidden=[16, 8], activation="GELU")
    assert [type(m) for m in net] == [nn.Linear, nn.GELU, nn.Linear, nn.GELU, nn.Linear]
    assert net(torch.zeros(3, 10)).shape == (3, 1)


def test_no_hidden_layer_is_a_linear_model():
    net = MLP(2, 1, hidden=[])
    assert [type(m) for m in net] == [nn.Linear]


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match=r"activation='sigmoidd': choose one of .*sigmoid.*tanh"):
        MLP(2, 1, hidden=[4], activation="sigmoidd")


def test_predict_is_probability_at_least_one_half():
    net = nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.fill_(1.0), net.bias.fill_(0.0)
    module = ClassifierModule(net, partial(torch.optim.SGD, lr=0.1))
    x = torch.tensor([[-2.0], [0.0], [3.0]])
    assert module.predict_proba(x).flatten().tolist() == pytest.approx(
        torch.sigmoid(x).flatten().tolist()
    )
    assert module.predict(x).flatten().tolist() == [0, 1, 1]


def test_importing_the_networks_leaves_the_seeded_generator_alone():
    """A seed fixes the first weights however late litlab.model is first imported (the
    activation list is probed at import; RReLU draws random numbers)."""
    code = (
        "import torch; torch.manual_seed(0); import litlab.model; a = torch.rand(3); "
        "torch.manual_seed(0); b = torch.rand(3); print(torch.equal(a, b))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
