"""DistributedDataParallel as gan_core's data-parallel workers wrap G and D (Ray Train, the bench)."""

from __future__ import annotations

import warnings

import torch
from torch.nn.parallel import DistributedDataParallel


def ddp(module: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """`module` (already on `device`) under DDP, in an initialised process group."""
    # A [1, N] weight's gradient may come back with strides (1, 1) instead of (N, 1): both are
    # valid layouts of that shape, but DDP warns about the bucket view every step.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    ids = [device.index] if device.type == "cuda" else None
    # Gradients as bucket views avoid a copy per step (and keep a channels_last weight's layout);
    # buckets of 25 MB let the all-reduce of the last layers start while backward is still running.
    return DistributedDataParallel(module, device_ids=ids, gradient_as_bucket_view=True, bucket_cap_mb=25)
