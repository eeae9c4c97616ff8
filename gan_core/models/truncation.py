"""Jacobian-based truncation (Tanielian et al. 2020, "Learning disconnected manifolds").

A generator is continuous, so when the data has separate modes it must tear its connected
latent space apart, and the latents near a tear land on the bridges between modes. There
the generator stretches space most: the Frobenius norm of its Jacobian dG/dz is largest.
Sampling keeps the `truncation` share of latents with the smallest norm and redraws the
rest, which removes most bridge samples and leaves the modes' weights almost untouched.

Only sampling is truncated (evaluation, pictures, serving); training draws from the full
prior. The threshold is the `truncation` quantile of the norm over fixed calibration draws,
so it depends on the weights alone: recompute it whenever they change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.func import jvp

from gan_core.models.parts import Generator

CALIBRATION_DRAWS = 10_000
CALIBRATION_SEED = 0
EXACT_UP_TO = 16  # latent sizes up to this get the exact norm (one forward-mode pass per axis)
PROBES = 8  # larger latents: Hutchinson's estimate from this many Gaussian directions
CHUNK = 1024
MAX_ROUNDS = 100  # each round expects to accept `truncation` of its candidates


def truncates(generator: torch.nn.Module) -> bool:
    return getattr(generator, "truncation", 1.0) < 1.0


@contextlib.contextmanager
def untruncated(generator: Generator) -> Iterator[Generator]:
    """The generator sampling from its full prior for the duration (to measure what truncation adds)."""
    kept, generator.truncation = generator.truncation, 1.0
    try:
        yield generator
    finally:
        generator.truncation = kept


@torch.no_grad()
def stretch(generator: Generator, latent: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of dG/dz at each latent (on CPU), the generator in eval mode."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    probes = torch.Generator().manual_seed(CALIBRATION_SEED)  # the same directions for every call
    norms = []
    for z in latent.split(CHUNK):
        z = z.to(device)
        norms.append(_stretch_of_chunk(generator, z, probes).cpu())
    generator.train(was_training)
    return torch.cat(norms)


def _stretch_of_chunk(generator: Generator, z: torch.Tensor, probes: torch.Generator) -> torch.Tensor:
    dim = z.shape[1]
    if dim <= EXACT_UP_TO:
        axes = torch.eye(dim, device=z.device, dtype=z.dtype)
        directions = [axes[axis].expand_as(z) for axis in range(dim)]
    else:  # E ||J v||^2 = ||J||_F^2 for v ~ N(0, I)
        directions = [torch.randn(z.shape, generator=probes).to(z.device) for _ in range(PROBES)]
    total = torch.zeros(len(z), device=z.device)
    for direction in directions:
        _, change = jvp(generator, (z,), (direction,))
        total += change.float().flatten(1).pow(2).sum(1)
    return total / (1 if dim <= EXACT_UP_TO else len(directions))


def stretch_threshold(generator: Generator) -> float:
    """The `generator.truncation` quantile of the stretch over the fixed calibration draws."""
    calibration = torch.randn(
        CALIBRATION_DRAWS, generator.latent_dim, generator=torch.Generator().manual_seed(CALIBRATION_SEED)
    )
    return float(torch.quantile(stretch(generator, calibration).double(), generator.truncation))


def draw_latents(generator: Generator, n: int, rng: torch.Generator, threshold: float | None = None) -> torch.Tensor:
    """n latents (CPU) from the prior, or, for a truncating generator, the first n of the prior's
    draws whose stretch is at most `threshold` (computed from the weights when not given)."""
    if not truncates(generator):
        return torch.randn(n, generator.latent_dim, generator=rng)
    if generator.num_classes:
        raise ValueError("Jacobian truncation applies to unconditional generators only")
    if threshold is None:
        threshold = stretch_threshold(generator)
    if threshold != threshold:  # NaN: a diverged generator; its plain draws show it as it is
        return torch.randn(n, generator.latent_dim, generator=rng)
    kept: list[torch.Tensor] = []
    found = 0
    for _ in range(MAX_ROUNDS):
        # Enough candidates that one round usually suffices; the loop covers an unlucky one.
        wanted = int((n - found) / generator.truncation * 1.05) + 16
        candidates = torch.randn(wanted, generator.latent_dim, generator=rng)
        accepted = candidates[stretch(generator, candidates) <= threshold]
        kept.append(accepted)
        found += len(accepted)
        if found >= n:
            return torch.cat(kept)[:n]
    raise RuntimeError(f"Jacobian truncation accepted {found} of {n} latents in {MAX_ROUNDS} rounds")
