"""Batch norm for critics: statistics of real samples and of fakes kept apart.

The training step scores real and fake rows (and WGAN-GP's interpolates) in one forward pass of
D, which is faster than one pass per source. A plain batch norm in D would then normalise each
row with statistics of real and fake mixed, unlike the DCGAN paper and its reference code (one
pass over reals, one over fakes), and against ganhacks' advice to keep every batch all real or
all fake: the critic could tell the sources apart by how the mix shifts the statistics, not by
the samples themselves. `CriticBatchNorm1d/2d` normalise each source's rows with that source's
own statistics inside the one pass; the step says how many sources a batch holds with
`scoring_sources`. Their parameters and buffers are a BatchNorm's, so checkpoints written with
plain batch norm load unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _PerSource:
    """Mixin for a batch norm: in training, a batch of `sources` equal parts, normalised part by part
    (each part also updates the running statistics, as a forward pass of its own would)."""

    sources: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = super().forward  # type: ignore[misc]
        if not self.training or self.sources == 1:  # type: ignore[attr-defined]
            return norm(x)
        return torch.cat([norm(part) for part in x.chunk(self.sources)])


class CriticBatchNorm1d(_PerSource, nn.BatchNorm1d):
    pass


class CriticBatchNorm2d(_PerSource, nn.BatchNorm2d):
    pass


class CriticSyncBatchNorm(_PerSource, nn.SyncBatchNorm):
    """Across data-parallel workers (`--sync-batchnorm`): each source's statistics over every worker."""


def source_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, _PerSource)]


@contextlib.contextmanager
def scoring_sources(norms: list[nn.Module], sources: int) -> Iterator[None]:
    """Within: the critic's batches hold `sources` equal parts (real, fake[, interpolates])."""
    for norm in norms:
        norm.sources = sources
    try:
        yield
    finally:
        for norm in norms:
            norm.sources = 1


def convert_sync_batchnorm(module: nn.Module, process_group: object | None = None) -> nn.Module:
    """torch's SyncBatchNorm.convert_sync_batchnorm, keeping critics' norms per source (torch's
    own would turn them into plain SyncBatchNorm, mixing the sources again)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
        kind = CriticSyncBatchNorm if isinstance(module, _PerSource) else nn.SyncBatchNorm
        synced = kind(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, process_group
        )
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(synced, name, getattr(module, name))
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, process_group))
    return module
