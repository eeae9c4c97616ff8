"""The multilayer-perceptron GAN of Goodfellow et al. (2014), for points and small images."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import nn

from gan_core.models.critic_norm import CriticBatchNorm1d
from gan_core.models.parts import GAN, Discriminator, Generator

if TYPE_CHECKING:
    from gan_core.config import ModelConfig


def build_mlp(cfg: ModelConfig, sample_shape: tuple[int, ...], num_classes: int = 0) -> GAN:
    """Fully connected G and D; tanh output for images, linear output for points."""
    conditional = cfg.conditioning != "none"
    out_dim = math.prod(sample_shape)
    g_in = cfg.latent_dim + (num_classes if conditional else 0)
    g_layers: list[nn.Module] = []
    for i in range(cfg.g_depth):
        g_layers.append(nn.Linear(g_in if i == 0 else cfg.g_width, cfg.g_width))
        if cfg.g_norm == "batch":
            g_layers.append(nn.BatchNorm1d(cfg.g_width))
        g_layers.append(nn.ReLU())
    g_layers.append(nn.Linear(cfg.g_width, out_dim))
    if len(sample_shape) == 3:  # images live in [-1, 1]
        g_layers.append(nn.Tanh())

    spectral = cfg.d_norm == "spectral"
    d_layers: list[nn.Module] = [nn.Flatten()]
    for i in range(cfg.d_depth):
        linear = nn.Linear(out_dim * cfg.pack if i == 0 else cfg.d_width, cfg.d_width)
        d_layers.append(nn.utils.parametrizations.spectral_norm(linear) if spectral else linear)
        if cfg.d_norm == "batch":
            d_layers.append(CriticBatchNorm1d(cfg.d_width))
        elif cfg.d_norm == "layer":
            d_layers.append(nn.LayerNorm(cfg.d_width))
        d_layers.append(nn.LeakyReLU(0.2))

    generator = Generator(
        nn.Sequential(*g_layers), cfg.latent_dim, sample_shape, num_classes if conditional else 0, cfg.truncation
    )
    discriminator = Discriminator(
        nn.Sequential(*d_layers), cfg.d_width, cfg.pack, num_classes, cfg.conditioning, spectral=spectral
    )
    return GAN(generator, discriminator)
