"""DiscoGAN (Kim et al. 2017): two generators, A->B and B->A, and a discriminator per domain.

Images: each generator is a convolutional encoder-decoder without skip connections: 4x4
stride-2 convolutions with LeakyReLU(0.2) (batch norm after all but the first) halve the map
down to 4x4, then 4x4 stride-2 transposed convolutions with batch norm and ReLU grow it back,
tanh at the end. Each discriminator is the same encoder followed by one logit. Points (the 2-D
toy): multilayer perceptrons of `g_depth` / `d_depth` hidden layers.

`g_width` and `d_width` are the first layer's channels (hidden units for points); channels
double at each halving. `latent_dim` is unused: the input sample is the generator's only input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from gan_core.models.critic_norm import CriticBatchNorm1d, CriticBatchNorm2d
from gan_core.models.parts import GAN, Discriminator, DomainCritics, Translator

if TYPE_CHECKING:
    from gan_core.config import ModelConfig

SMALLEST_MAP = 4  # the paper's encoder stops at 4x4 (from 64x64)


def halvings(size: int) -> int:
    """How many stride-2 layers take a `size`-pixel map down to 4 pixels (7 for 28-pixel images).

    On 8x8 digits that is a single halving. Stopping at 4x4 keeps each output pixel tied to its
    neighbourhood in the input, which is what steers the mapping to the simple relation: going
    on to 2x2, our runs on digit pairs found bijections that swap digit classes instead.
    """
    side, steps = size, 0
    while side % 2 == 0 and side > SMALLEST_MAP:
        side, steps = side // 2, steps + 1
    if steps == 0:
        raise ValueError(f"DiscoGAN needs an even image side above {SMALLEST_MAP} (8, 16, 28, 32, 64, ...), not {size}")
    return steps


def build_discogan(cfg: ModelConfig, sample_shape: tuple[int, ...], num_classes: int = 0) -> GAN:
    """A Translator (A->B, B->A) and DomainCritics (one per domain) for samples of `sample_shape`."""
    del num_classes  # translations keep the class of their input; nothing is conditioned on a label
    if len(sample_shape) == 1:
        make_generator, make_critic = _mlp_generator, _mlp_critic
    elif len(sample_shape) == 3 and sample_shape[1] == sample_shape[2]:
        make_generator, make_critic = _conv_generator, _conv_critic
    else:
        raise ValueError(f"DiscoGAN needs points (D,) or square images (C, H, H), got shape {list(sample_shape)}")
    translator = Translator(make_generator(cfg, sample_shape), make_generator(cfg, sample_shape), sample_shape)
    critics = DomainCritics(make_critic(cfg, sample_shape), make_critic(cfg, sample_shape))
    return GAN(translator, critics)


# --------------------------------------------------------------------------- images


def _conv_generator(cfg: ModelConfig, shape: tuple[int, ...]) -> nn.Module:
    steps = halvings(shape[1])
    encoder, channels = _encoder(shape[0], cfg.g_width, steps, cfg.g_norm)
    return nn.Sequential(encoder, _decoder(channels, shape[0], steps, cfg.g_norm))


def _conv_critic(cfg: ModelConfig, shape: tuple[int, ...]) -> Discriminator:
    steps = halvings(shape[1])
    body, channels = _encoder(shape[0] * cfg.pack, cfg.d_width, steps, cfg.d_norm, batch_norm=CriticBatchNorm2d)
    side = shape[1] >> steps
    body.append(nn.Flatten())
    return Discriminator(body, channels * side * side, cfg.pack, spectral=cfg.d_norm == "spectral")


def _encoder(
    in_channels: int, width: int, steps: int, norm: str, batch_norm: type[nn.Module] = nn.BatchNorm2d
) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    channels = in_channels
    for i in range(steps):
        out = width * 2**i
        # The first layer sees raw pixels and stays unnormalised (as in DCGAN and DiscoGAN).
        normalised = i > 0 and norm in ("batch", "layer")
        conv = nn.Conv2d(channels, out, 4, 2, 1, bias=not (normalised and norm == "batch"))
        layers.append(nn.utils.parametrizations.spectral_norm(conv) if norm == "spectral" else conv)
        if normalised:
            layers.append(batch_norm(out) if norm == "batch" else nn.GroupNorm(1, out))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        channels = out
    return nn.Sequential(*layers), channels


def _decoder(in_channels: int, out_channels: int, steps: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for i in range(steps):
        last = i == steps - 1
        out = out_channels if last else channels // 2
        layers.append(nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=last or norm != "batch"))
        if last:
            layers.append(nn.Tanh())  # images live in [-1, 1]
        else:
            layers += [nn.BatchNorm2d(out)] if norm == "batch" else []
            layers.append(nn.ReLU(inplace=True))
        channels = out
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- points


def _mlp_generator(cfg: ModelConfig, shape: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = []
    width_in = shape[0]
    for _ in range(cfg.g_depth):
        layers.append(nn.Linear(width_in, cfg.g_width))
        layers += [nn.BatchNorm1d(cfg.g_width)] if cfg.g_norm == "batch" else []
        layers.append(nn.ReLU())
        width_in = cfg.g_width
    layers.append(nn.Linear(width_in, shape[0]))  # points are unbounded: no squashing
    return nn.Sequential(*layers)


def _mlp_critic(cfg: ModelConfig, shape: tuple[int, ...]) -> Discriminator:
    spectral = cfg.d_norm == "spectral"
    layers: list[nn.Module] = [nn.Flatten()]
    width_in = shape[0] * cfg.pack
    for _ in range(cfg.d_depth):
        linear = nn.Linear(width_in, cfg.d_width)
        layers.append(nn.utils.parametrizations.spectral_norm(linear) if spectral else linear)
        if cfg.d_norm == "batch":
            layers.append(CriticBatchNorm1d(cfg.d_width))
        elif cfg.d_norm == "layer":
            layers.append(nn.LayerNorm(cfg.d_width))
        layers.append(nn.LeakyReLU(0.2))
        width_in = cfg.d_width
    return Discriminator(nn.Sequential(*layers), cfg.d_width, cfg.pack, spectral=spectral)
