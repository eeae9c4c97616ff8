"""What every GAN in gan_core shares: the generator and discriminator wrappers.

A generator maps latent vectors (and, when conditional, labels) to samples. A discriminator
is a feature body plus heads: the real/fake logit, and for conditional models either an
auxiliary classifier (AC-GAN, Odena et al. 2017) or a projection of the label embedding
onto the features (Miyato & Koyama 2018). PacGAN packing (Lin et al. 2018) happens here
too, so every body gets it for free.

Translation models (DiscoGAN) pair two generators in a `Translator` and two discriminators in
`DomainCritics`; each pair plays the part of one generator or one discriminator in training,
EMA, checkpoints and serving.
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
    def __init__(
        self,
        body: nn.Module,
        latent_dim: int,
        sample_shape: tuple[int, ...],
        num_classes: int = 0,
        truncation: float = 1.0,
    ) -> None:
        super().__init__()
        self.body = body
        self.latent_dim = latent_dim
        self.sample_shape = tuple(sample_shape)
        self.num_classes = num_classes  # 0: unconditional
        # Share of latents that sampling keeps (gan_core.models.truncation); training draws all.
        self.truncation = truncation

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


class Cycle(NamedTuple):
    """One training pass of a translator over a batch of A and a batch of B."""

    fake_b: torch.Tensor  # A -> B
    fake_a: torch.Tensor  # B -> A
    rec_a: torch.Tensor  # A -> B -> A
    rec_b: torch.Tensor  # B -> A -> B


class Translator(nn.Module):
    """Two generators between domains of the same shape: `a_to_b` and `b_to_a`.

    Called with a batch of A it translates it to B (what sampling, evaluation and serving do).
    Called with a batch of A and one of B it runs the whole training pass, both directions and
    both round trips, in one call: DistributedDataParallel then sees each parameter used in
    the one forward that precedes each backward.
    """

    num_classes = 0  # never conditional: the input image is the condition
    conditional = False

    def __init__(self, a_to_b: nn.Module, b_to_a: nn.Module, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.a_to_b, self.b_to_a = a_to_b, b_to_a
        self.sample_shape = tuple(sample_shape)

    def forward(self, source: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor | Cycle:
        if target is None:
            return self.a_to_b(source)
        fake_b, fake_a = self.a_to_b(source), self.b_to_a(target)
        return Cycle(fake_b, fake_a, self.b_to_a(fake_b), self.a_to_b(fake_a))

    def translate(self, x: torch.Tensor, direction: str = "a_to_b") -> torch.Tensor:
        if direction not in ("a_to_b", "b_to_a"):
            raise ValueError(f"direction={direction!r} is not allowed: 'a_to_b' or 'b_to_a'")
        return getattr(self, direction)(x)


class DomainCritics(nn.Module):
    """One discriminator per domain; one call scores a batch of each (one forward per backward)."""

    def __init__(self, critic_a: Discriminator, critic_b: Discriminator) -> None:
        super().__init__()
        self.critic_a, self.critic_b = critic_a, critic_b

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.critic_a(x_a).logit, self.critic_b(x_b).logit


def is_translator(module: nn.Module) -> bool:
    return isinstance(module, Translator)


class GAN(NamedTuple):
    generator: Generator | Translator
    discriminator: Discriminator | DomainCritics
