"""GAN architectures, by name: ``MODELS[name](model_cfg, sample_shape, num_classes)`` -> GAN."""

from __future__ import annotations

from collections.abc import Callable

from gan_core.models.dcgan import build_dcgan
from gan_core.models.mlp import build_mlp
from gan_core.models.parts import GAN, Discriminator, DiscriminatorOutput, Generator
from gan_core.registry import Registry

MODELS: Registry[Callable[..., GAN]] = Registry("model")
MODELS.register("mlp", "multilayer perceptron G and D (Goodfellow et al. 2014); points or images")(build_mlp)
MODELS.register("dcgan", "DCGAN (Radford et al. 2016) for square images of 8, 16, 28, 32, 64 px")(build_dcgan)

__all__ = ["GAN", "MODELS", "Discriminator", "DiscriminatorOutput", "Generator"]
