"""GAN architectures, by name: ``MODELS[name](model_cfg, sample_shape, num_classes)`` -> GAN."""

from __future__ import annotations

from collections.abc import Callable

from gan_core.models.dcgan import build_dcgan
from gan_core.models.discogan import build_discogan
from gan_core.models.mlp import build_mlp
from gan_core.models.parts import (
    GAN,
    Cycle,
    Discriminator,
    DiscriminatorOutput,
    DomainCritics,
    Generator,
    Translator,
    is_translator,
)
from gan_core.registry import Registry

MODELS: Registry[Callable[..., GAN]] = Registry("model")
MODELS.register("mlp", "multilayer perceptron G and D (Goodfellow et al. 2014); points or images")(build_mlp)
MODELS.register("dcgan", "DCGAN (Radford et al. 2016) for square images of 8, 16, 28, 32, 64 px")(build_dcgan)
MODELS.register("discogan", "DiscoGAN (Kim et al. 2017): translation A<->B learned from unpaired two-domain data")(
    build_discogan
)

# Models that translate between the two domains of a two-domain dataset instead of drawing
# samples from noise; their generator is a Translator and their discriminator DomainCritics.
TRANSLATION_MODELS = frozenset({"discogan"})

__all__ = [
    "GAN",
    "MODELS",
    "TRANSLATION_MODELS",
    "Cycle",
    "Discriminator",
    "DiscriminatorOutput",
    "DomainCritics",
    "Generator",
    "Translator",
    "is_translator",
]
