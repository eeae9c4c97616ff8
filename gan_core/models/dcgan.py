"""DCGAN (Radford et al. 2016): strided transposed convolutions up, strided convolutions down.

Square images of 8, 16, 28, 32 or 64 pixels and any channel count. The generator starts from
a small map (2x2 for 8 pixels, 7x7 for 28, else 4x4) and doubles it; channels halve as the
map grows, from ``g_width * 2**(ups-1)`` down to the image's channels (ngf = g_width).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from gan_core.models.critic_norm import CriticBatchNorm2d
from gan_core.models.parts import GAN, Discriminator, Generator

if TYPE_CHECKING:
    from gan_core.config import ModelConfig

BASE_SIZE = {8: 2, 16: 4, 28: 7, 32: 4, 64: 4}


def upsampling_steps(size: int) -> tuple[int, int]:
    if size not in BASE_SIZE:
        raise ValueError(f"DCGAN supports square images of {sorted(BASE_SIZE)} pixels, not {size}")
    base, steps = BASE_SIZE[size], 0
    while base << steps < size:
        steps += 1
    return base, steps


def build_dcgan(cfg: ModelConfig, sample_shape: tuple[int, ...], num_classes: int = 0) -> GAN:
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ValueError(f"DCGAN needs square images (C, H, H), got shape {list(sample_shape)}")
    channels, size = sample_shape[0], sample_shape[1]
    base, steps = upsampling_steps(size)
    conditional = cfg.conditioning != "none"
    generator = Generator(
        _generator_body(cfg, channels, base, steps, cfg.latent_dim + (num_classes if conditional else 0)),
        cfg.latent_dim,
        sample_shape,
        num_classes if conditional else 0,
        cfg.truncation,
    )
    body, feature_dim = _discriminator_body(cfg, channels * cfg.pack, base, steps)
    discriminator = Discriminator(
        body, feature_dim, cfg.pack, num_classes, cfg.conditioning, spectral=cfg.d_norm == "spectral"
    )
    generator.apply(_dcgan_init)
    discriminator.apply(_dcgan_init)
    return GAN(generator, discriminator)


def _generator_body(cfg: ModelConfig, channels: int, base: int, steps: int, in_dim: int) -> nn.Sequential:
    width = [cfg.g_width * 2 ** (steps - 1 - i) for i in range(steps)]  # e.g. 512, 256, 128, 64
    # A transposed convolution over a 1x1 input is DCGAN's projection of z to the first map.
    layers: list[nn.Module] = [
        nn.Unflatten(1, (in_dim, 1, 1)),
        nn.ConvTranspose2d(in_dim, width[0], base, 1, 0, bias=False),
    ]
    layers += _g_norm(cfg, width[0])
    for i in range(steps):
        last = i == steps - 1
        out = channels if last else width[i + 1]
        layers.append(nn.ConvTranspose2d(width[i], out, 4, 2, 1, bias=last))
        layers += [nn.Tanh()] if last else _g_norm(cfg, out)
    return nn.Sequential(*layers)


def _g_norm(cfg: ModelConfig, width: int) -> list[nn.Module]:
    return ([nn.BatchNorm2d(width)] if cfg.g_norm == "batch" else []) + [nn.ReLU(inplace=True)]


def _discriminator_body(cfg: ModelConfig, in_channels: int, base: int, steps: int) -> tuple[nn.Sequential, int]:
    width = [cfg.d_width * 2**i for i in range(steps)]  # e.g. 64, 128, 256, 512
    layers: list[nn.Module] = []
    for i in range(steps):
        conv = nn.Conv2d(
            in_channels if i == 0 else width[i - 1], width[i], 4, 2, 1, bias=i == 0 or cfg.d_norm != "batch"
        )
        layers.append(nn.utils.parametrizations.spectral_norm(conv) if cfg.d_norm == "spectral" else conv)
        # DCGAN leaves the first layer unnormalised.
        if i > 0 and cfg.d_norm == "batch":
            layers.append(CriticBatchNorm2d(width[i]))
        elif i > 0 and cfg.d_norm == "layer":
            layers.append(nn.GroupNorm(1, width[i]))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), width[-1] * base * base


def _dcgan_init(module: nn.Module) -> None:
    """Radford et al.: weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear) and not hasattr(module, "parametrizations"):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
