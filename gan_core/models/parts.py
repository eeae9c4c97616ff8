"""What every GAN in gan_core shares: the generator and discriminator wrappers.

A generator maps latent vectors (and, when conditional, labels) to samples. A discriminator
is a feature body plus heads: the real/fake logit, and for conditional models either an
auxiliary classifier (AC-GAN, Odena et al. 2017) or a projection of the label embedding
onto the features (Miyato & Koyama 2018). PacGAN packing (Lin et al. 2018) happens here
too, so every body gets it for free.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class DiscriminatorOutput(NamedTuple):
    logit: torch.Tensor  # (batch / pack,) real-vs-fake logits
    class_logits: torch.Tensor | None  # (batch, classes) for AC-GAN, else None


class Generator(nn.Module):
    def __init__(self, body: nn.Module, latent_dim: int, sample_shape: tuple[int, ...], num_classes: int = 0) -> None:
        super().__init__()
        self.body = body
        self.latent_dim = latent_dim
        self.sample_shape = tuple(sample_shape)
        self.num_classes = num_classes  # 0: unconditional

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if labels is None:
                raise ValueError("this generator is conditional: pass labels")
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return self.body(z).view(z.shape[0], *self.sample_shape)

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=device)


class Discriminator(nn.Module):
    def __init__(
        self,
        body: nn.Module,
        feature_dim: int,
        pack: int = 1,
        num_classes: int = 0,
        conditioning: str = "none",
        spectral: bool = False,
    ) -> None:
        super().__init__()
        self.body = body
        self.pack = pack
        self.conditioning = conditioning
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.head = wrap(nn.Linear(feature_dim, 1))
        self.classifier = nn.Linear(feature_dim, num_classes) if conditioning == "acgan" else None
        self.embed = wrap(nn.Embedding(num_classes, feature_dim)) if conditioning == "projection" else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> DiscriminatorOutput:
        h = self.body(pack_samples(x, self.pack))
        logit = self.head(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator projects labels: pass labels")
            logit = logit + (self.embed(labels) * h).sum(dim=1)
        class_logits = self.classifier(h) if self.classifier is not None else None
        return DiscriminatorOutput(logit, class_logits)


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """PacGAN: fold groups of `pack` consecutive samples into one input along channels/features."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise ValueError(f"batch of {x.shape[0]} samples cannot be packed in groups of {pack}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


class GAN(NamedTuple):
    generator: Generator
    discriminator: Discriminator
