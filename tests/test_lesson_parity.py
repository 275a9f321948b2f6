"""experiment=seed is the lesson exactly: same initial weights, same loss every epoch."""

from __future__ import annotations

import pytest
import torch
from conftest import scalars
from sklearn import datasets
from torch import nn

from litlab.train import train


def lesson_losses(seed: int, epochs: int = 1000) -> list[float]:
    """The lesson's script, as written there (sigmoid output and BCELoss)."""
    torch.manual_seed(seed)
    X, y = datasets.make_circles(n_samples=500, random_state=123, noise=0.2, factor=0.3)
    x_data, y_data = torch.Tensor(X), torch.Tensor(y.reshape(500, 1))

    class Model(nn.Module):
        def __init__(self, input_size, H1, output_size):
            super().__init__()
            self.linear1 = nn.Linear(input_size, H1)
            self.linear2 = nn.Linear(H1, output_size)

        def forward(self, x):
            x = torch.sigmoid(self.linear1(x))
            return torch.sigmoid(self.linear2(x))

    model = Model(2, 4, 1)
    criterion = nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = criterion(model(x_data), y_data)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses


@pytest.mark.slow
@pytest.mark.parametrize("seed, epochs", [(0, 1000), (7, 200)])  # the lesson; another seed
def test_seed_experiment_logs_the_lessons_losses(make_config, seed, epochs):
    words = ["experiment=seed", f"seed={seed}", f"trainer.max_epochs={epochs}"]
    run_dir, _ = train(make_config(*words, "trainer.log_every_n_steps=1"))
    logged = scalars(run_dir)["train/loss"]
    expected = lesson_losses(seed, epochs)
    assert [step for step, _ in logged] == list(range(epochs))
    assert [value for _, value in logged] == pytest.approx(expected, abs=1e-5)
