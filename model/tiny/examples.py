"""The shipped example models (torch modules) and the synthetic data they are trained on.

Classes live at module top level so a QAT config can name them as `examples:ConvFilter` etc.
Every generator takes a `torch.Generator` so the caller controls determinism; images are kept in
[0, 1], the range a signature-driven gate draws from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- models


class ConvFilter(nn.Module):
    """Residual denoiser: frame [1,1,H,W] -> filtered [1,1,H,W] = frame + correction."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(frame))
        h = F.relu(self.conv2(h))
        return frame + self.conv3(h)


class NrMetric(nn.Module):
    """No-reference metric: frame [B,1,32,32] -> score [B,1] (the frame's high-frequency score)."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(channels, 16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(frame))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return self.fc2(F.relu(self.fc1(h)))


class MlpRegressor(nn.Module):
    """Small MLP: features [B,6] -> score [B,1]."""

    def __init__(self, n_features: int = 6, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class TwoInput(nn.Module):
    """Full-reference metric: (ref, dist) [B,1,16,16] each -> score [B,1] (normalised MSE).

    A feature-space MSE: shared conv features of both inputs, squared difference, pooled, mixed.
    Squaring in the graph (not in ReLU layers) lets a tiny net fit MSE closely, which keeps its
    output spread wide enough that int8 rounding stays small beside it.
    """

    def __init__(self, channels: int = 8):
        super().__init__()
        self.embed = nn.Conv2d(1, channels, 3, padding=1)  # shared by both inputs
        self.mix = nn.Conv2d(channels, channels, 3, padding=1)
        self.fc = nn.Linear(channels, 1)

    def forward(self, ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        diff = self.embed(ref) - self.embed(dist)
        h = self.mix(diff * diff)
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return self.fc(h)


# --------------------------------------------------------------------------- synthetic data
# Images mix smooth content with per-pixel white noise on purpose: a signature-driven gate feeds
# uniform [0, 1) pixels, and static int8 ranges calibrated on smooth images alone clip on those.


def mixed_images(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """Images in [0, 1] from coarse random grids upsampled bilinearly; the grid factor is drawn
    per image from {1, 2, 4, 8}, so factor 1 is uniform white noise and 8 is very smooth."""
    pick = torch.randint(0, 4, (n, 1, 1, 1), generator=g)
    out = torch.zeros(n, 1, h, w)
    for k, f in enumerate((1, 2, 4, 8)):  # every scale for every image, then keep one: vectorised
        coarse = torch.rand(n, 1, max(1, h // f), max(1, w // f), generator=g)
        up = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        out = torch.where(pick == k, up, out)
    # a per-image contrast and offset; full range stays common so white noise matches the gate
    scale = (0.4 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)).clamp(max=1.0)
    offset = (1 - scale) * torch.rand(n, 1, 1, 1, generator=g)
    return out * scale + offset


def box_blur(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean with replicated borders, same shape."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def add_noise(x: torch.Tensor, max_sigma: float, g: torch.Generator) -> torch.Tensor:
    sigma = max_sigma * torch.rand(x.shape[0], 1, 1, 1, generator=g)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def denoise_batch(n: int, g: torch.Generator, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, clean) pairs for ConvFilter: Gaussian noise with sigma in [0, 0.12]."""
    clean = mixed_images(n, size, size, g)
    return add_noise(clean, 0.12, g), clean


def high_frequency_score(x: torch.Tensor) -> torch.Tensor:
    """RMS of the image minus its 3x3 blur, / 0.3: about 0 for flat images, 0.9 for white noise."""
    return ((x - box_blur(x)) ** 2).mean(dim=(1, 2, 3)).sqrt().unsqueeze(1) / 0.3


def noise_level_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(frame, score) for NrMetric: mixed images, some noisier, scored by high_frequency_score."""
    frame = add_noise(mixed_images(n, 32, 32, g), 0.2, g)
    return frame, high_frequency_score(frame)


def mlp_target(x: torch.Tensor) -> torch.Tensor:
    """A smooth nonlinear function of six features in [0, 1), output [B,1], roughly 1.5..5."""
    return (
        torch.sin(3.0 * x[:, 0]) + x[:, 1] * x[:, 2] + torch.exp(-2.0 * x[:, 3]) + x[:, 4] ** 2 - 0.5 * x[:, 5] + 1.5
    ).unsqueeze(1)


def mlp_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 6, generator=g)
    return x, mlp_target(x)


def full_reference_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ref, dist, score) for TwoInput: dist is ref plus noise, ref blurred, or an unrelated
    image; a quarter of the pairs are two independent white-noise images, exactly what a
    signature-driven gate feeds. score = MSE(ref, dist) / 0.16, about 1 for such pairs.

    The squared features peak on white-noise pairs, so static int8 ranges must be calibrated on
    them or they clip on the gate's draws; MSE (not RMSE) spreads those pairs' scores twice as
    wide, so int8 rounding of the score matters half as much."""
    ref = mixed_images(n, 16, 16, g)
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=g)
    noisy = add_noise(ref, 0.2, g)
    blurred = box_blur(ref)
    unrelated = mixed_images(n, 16, 16, g)
    dist = torch.where(kind == 0, noisy, torch.where(kind == 1, blurred, unrelated))
    white = torch.rand(n, 1, 1, 1, generator=g) < 0.25
    ref = torch.where(white, torch.rand(n, 1, 16, 16, generator=g), ref)
    dist = torch.where(white, torch.rand(n, 1, 16, 16, generator=g), dist)
    mse = ((ref - dist) ** 2).mean(dim=(1, 2, 3)).unsqueeze(1)
    return ref, dist, mse / 0.16
