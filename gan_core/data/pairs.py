"""Two-domain datasets for translation models (DiscoGAN), built here without downloads.

Digit pairs: domain B is the digits under a fixed transform (inverted, rotated, thickened).
A and B are drawn from disjoint halves of the digits' training split, so no training image of
A has its counterpart in B: a model sees two piles of images and must discover the relation.
The held-out split is kept paired (B row i is A row i transformed) only to score translations
against the truth. Labels come along for the metrics (the translation must keep the digit),
never for training.

Mixture pair: after the toy of Kim et al. (2017), domain A is a 2-D mixture of 5 Gaussians and
domain B one of 10, drawn independently; a good mapping sends A's modes to distinct modes of B.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from gan_core.data.dataset import Dataset, split
from gan_core.data.images import DIGITS_TEST_FRACTION, _sklearn_digits
from gan_core.data.mixtures import _mixture_dataset, ring_modes

PAIR_SIGMA = 0.05  # both toy domains; wide enough that a small MLP can land within 3 sigma
PAIR_MODES_A, PAIR_MODES_B = 5, 10


def invert(x: torch.Tensor) -> torch.Tensor:
    """Dark ink on a light background instead of light ink on dark ([-1, 1] images)."""
    return -x


def rotate(x: torch.Tensor) -> torch.Tensor:
    """A quarter turn counter-clockwise: exact on the pixel grid, no interpolation."""
    return torch.rot90(x, 1, dims=(-2, -1))


def thicken(x: torch.Tensor) -> torch.Tensor:
    """Each pixel gains the mean ink of its four neighbours: strokes grow by about a pixel but
    stay readable (a hard 3x3 dilation turns most 8x8 digits into blobs)."""
    ink = (x + 1) / 2
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]) / 4
    kernel = cross.to(x).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    neighbours = F.conv2d(F.pad(ink, (1, 1, 1, 1)), kernel, groups=x.shape[1])
    return (ink + neighbours).clamp(max=1.0) * 2 - 1


def digit_pair(name: str, transform: Callable[[torch.Tensor], torch.Tensor], seed: int = 0) -> Dataset:
    x, y = _sklearn_digits()
    train, test = split(len(x), DIGITS_TEST_FRACTION, seed)  # the same held-out digits as `digits`
    halves = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 1))]
    a, b = halves[: len(halves) // 2], halves[len(halves) // 2 :]
    target = Dataset(f"{name}.b", "images", transform(x[b]), transform(x[test]), y[b], y[test], num_classes=10)
    return Dataset(name, "images", x[a], x[test], y[a], y[test], num_classes=10, target=target, paired_test=True)


def load_digits_inverted(seed: int = 0, **_: object) -> Dataset:
    """Two domains: 8x8 digits and, from other images, the same digits inverted (unpaired)."""
    return digit_pair("digits-inverted", invert, seed)


def load_digits_rotated(seed: int = 0, **_: object) -> Dataset:
    """Two domains: 8x8 digits and, from other images, digits turned a quarter (unpaired)."""
    return digit_pair("digits-rotated", rotate, seed)


def load_digits_thick(seed: int = 0, **_: object) -> Dataset:
    """Two domains: 8x8 digits and, from other images, digits with thicker strokes (unpaired)."""
    return digit_pair("digits-thick", thicken, seed)


def load_mixture_pair(n_train: int = 100_000, seed: int = 0, **_: object) -> Dataset:
    """Two 2-D domains: 5 Gaussians on a ring of radius 1 (A), 10 on a ring of radius 2 (B)."""
    a = _mixture_dataset("mixture-pair", ring_modes(PAIR_MODES_A, 1.0), PAIR_SIGMA, n_train, seed)
    b = _mixture_dataset("mixture-pair.b", ring_modes(PAIR_MODES_B, 2.0), PAIR_SIGMA, n_train, seed + 1)
    return Dataset(a.name, a.kind, a.train_x, a.test_x, modes=a.modes, sigma=a.sigma, target=b)


PAIRED_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits-inverted": load_digits_inverted,
    "digits-rotated": load_digits_rotated,
    "digits-thick": load_digits_thick,
    "mixture-pair": load_mixture_pair,
}
