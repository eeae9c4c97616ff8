"""The in-memory dataset every GAN in gan_core trains on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors plus what the metrics need to read them.

    Points are ``(N, 2)``; images are ``(N, C, H, W)`` float32 in [-1, 1]. Labels are int64
    class indices, or ``None`` for unlabelled data.
    """

    name: str
    kind: Literal["points", "images"]
    train_x: torch.Tensor
    test_x: torch.Tensor
    train_y: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    num_classes: int = 0
    # The 2-D mixtures know their true modes and spread; the protocol's metrics use both.
    modes: torch.Tensor | None = None
    sigma: float = 0.0
    # Stacked digits: labels are base-`digit_classes` numbers, one digit per channel.
    digit_classes: int = 0
    source: Dataset | None = None  # stacked digits: the single-digit set the stacks are drawn from

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def labelled(self) -> bool:
        return self.train_y is not None and self.num_classes > 0

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "train": int(self.train_x.shape[0]),
            "test": int(self.test_x.shape[0]),
            "shape": list(self.sample_shape),
            "classes": self.num_classes,
        }


def scale_to_unit_range(pixels: torch.Tensor, max_value: float) -> torch.Tensor:
    """Map pixel values in [0, max_value] to [-1, 1], the range of a tanh generator."""
    return (pixels.float() / max_value) * 2.0 - 1.0


def split(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded permutation split into train and test indices."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_fraction))
    return order[n_test:], order[:n_test]
