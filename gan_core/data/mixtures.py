"""The 2-D Gaussian mixtures of the mode-collapse literature, with the PacGAN protocol.

Ring: 8 modes evenly spaced on the unit circle, sigma 0.01. Grid: 25 modes at {-4,-2,0,2,4}^2,
sigma 0.05 (Lin et al. 2018, after Metz et al. 2017 and Srivastava et al. 2017).
"""

from __future__ import annotations

import math

import torch

from gan_core.data.dataset import Dataset

RING_SIGMA = 0.01
GRID_SIGMA = 0.05


def ring_modes(n_modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).float()


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    coords = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def sample_mixture(modes: torch.Tensor, sigma: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """Equal-weight isotropic Gaussian mixture."""
    which = torch.randint(len(modes), (n,), generator=generator)
    return modes[which] + sigma * torch.randn(n, 2, generator=generator)


def _mixture_dataset(name: str, modes: torch.Tensor, sigma: float, n_train: int, seed: int) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    n_test = max(2500, n_train // 10)
    return Dataset(
        name=name,
        kind="points",
        train_x=sample_mixture(modes, sigma, n_train, gen),
        test_x=sample_mixture(modes, sigma, n_test, gen),
        modes=modes,
        sigma=sigma,
    )


def load_ring(n_train: int = 100_000, seed: int = 0, **_: object) -> Dataset:
    """2-D ring of 8 Gaussians, radius 1, sigma 0.01."""
    return _mixture_dataset("ring", ring_modes(), RING_SIGMA, n_train, seed)


def load_grid(n_train: int = 100_000, seed: int = 0, **_: object) -> Dataset:
    """2-D grid of 25 Gaussians at {-4,-2,0,2,4}^2, sigma 0.05."""
    return _mixture_dataset("grid", grid_modes(), GRID_SIGMA, n_train, seed)
