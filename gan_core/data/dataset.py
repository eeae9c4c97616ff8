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

    A two-domain dataset (for translation models such as DiscoGAN) is domain A, with domain B
    as its `target`: two independent sets of samples, never paired for training.
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
    target: Dataset | None = None  # two-domain datasets: domain B (this dataset's own tensors are domain A)
    # Two-domain datasets whose held-out B split is the true counterpart of the held-out A split,
    # row by row: used only to score translations, never seen in training.
    paired_test: bool = False
    # What each label means, when the classes have names ("sneaker" says more than 7 in a picture
    # or a report); empty where the label is the name (digits) or there are no classes.
    class_names: tuple[str, ...] = ()

    @property
    def translation(self) -> bool:
        """Two domains (A here, B in `target`) for a translation model, rather than one to generate."""
        return self.target is not None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def labelled(self) -> bool:
        return self.train_y is not None and self.num_classes > 0

    def class_name(self, label: int) -> str:
        """How pictures and reports name class `label`: "sneaker" where classes have names, else "7"."""
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def summary(self) -> dict[str, object]:
        summary: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            "train": int(self.train_x.shape[0]),
            "test": int(self.test_x.shape[0]),
            "shape": list(self.sample_shape),
            "classes": self.num_classes,
        }
        if self.class_names:
            summary["class_names"] = list(self.class_names)
        if self.target is not None:
            summary["target"] = self.target.summary()
        return summary


def scale_to_unit_range(pixels: torch.Tensor, max_value: float) -> torch.Tensor:
    """Map pixel values in [0, max_value] to [-1, 1], the range of a tanh generator."""
    return (pixels.float() / max_value) * 2.0 - 1.0


def split(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded permutation split into train and test indices."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_fraction))
    return order[n_test:], order[:n_test]
