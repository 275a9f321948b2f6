"""The lesson's script (its per-epoch print and plots left out): the raw PyTorch loop
that `scripts/bench.py` times the template against, in-process and as a whole process."""

import time

import torch
import torch.nn as nn
from sklearn import datasets


class Model(nn.Module):
    def __init__(self, input_size, H1, output_size):
        super().__init__()
        self.linear1 = nn.Linear(input_size, H1)
        self.linear2 = nn.Linear(H1, output_size)

    def forward(self, x):
        x = torch.sigmoid(self.linear1(x))
        x = torch.sigmoid(self.linear2(x))
        return x


def lesson(seed: int = 0, epochs: int = 1000) -> tuple[list[float], float]:
    """Run the lesson's loop; return its per-epoch losses and the loop's seconds per step."""
    X, y = datasets.make_circles(n_samples=500, random_state=123, noise=0.2, factor=0.3)
    x_data = torch.Tensor(X)
    y_data = torch.Tensor(y.reshape(500, 1))
    torch.manual_seed(seed)
    model = Model(2, 4, 1)
    criterion = nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    start = time.perf_counter()
    for _ in range(epochs):
        optimizer.zero_grad()
        y_pred = model(x_data)
        loss = criterion(y_pred, y_data)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses, (time.perf_counter() - start) / epochs


if __name__ == "__main__":
    losses, _ = lesson()
    print(f"final loss {losses[-1]:.4f}")
