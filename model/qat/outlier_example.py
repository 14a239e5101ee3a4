"""An example model that static PTQ cannot keep inside a 0.01 budget and QAT can.

`OutlierMlp` is an MLP 8 -> 64 -> 64 -> 1 whose first layer has a few "outlier" hidden units:
their weights and bias are scaled up by `gain` and the second layer's weights reading them are
scaled down by the same factor. Because ReLU(a*z) = a*ReLU(z) for a > 0, the function is the same
as an ordinary MLP, but the first hidden activation (one per-tensor int8 scale) now spans a range
`gain` times wider than most of its channels: PTQ rounds the ordinary channels to a handful of
levels. Such channels appear in trained networks (large-magnitude features); the construction
makes them explicit and reproducible.

The data: eight features uniform in [0, 1) (the range the gate draws from) and a smooth target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OutlierMlp(nn.Module):
    """features [B,8] -> score [B,1]; `outliers` hidden units carry `gain` x the usual range."""

    def __init__(self, n_features: int = 8, hidden: int = 64, outliers: int = 4, gain: float = 64.0):
        super().__init__()
        self.fc1 = nn.Linear(n_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)
        with torch.no_grad():  # function-preserving rescale of the first `outliers` units
            self.fc1.weight[:outliers] *= gain
            self.fc1.bias[:outliers] *= gain
            self.fc2.weight[:, :outliers] /= gain

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(features))
        h = F.relu(self.fc2(h))
        return self.fc3(h)


def target(x: torch.Tensor) -> torch.Tensor:
    """A smooth score of eight features in [0, 1), [B,1], roughly 0..4."""
    return (
        torch.sin(2.5 * x[:, 0] + x[:, 1])
        + x[:, 2] * x[:, 3]
        + torch.exp(-x[:, 4])
        + 0.5 * torch.cos(3.0 * x[:, 5]) * x[:, 6]
        + 0.3 * x[:, 7]
        + 1.0
    ).unsqueeze(1)


def batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, score) pairs: the training distribution, fn(n, generator) as QAT configs expect."""
    x = torch.rand(n, 8, generator=g)
    return x, target(x)
