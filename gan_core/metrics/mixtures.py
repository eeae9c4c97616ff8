"""The 2-D mixture protocol of PacGAN (Lin et al. 2018), after VEEGAN (Srivastava et al. 2017).

A sample is high quality when it lies within 3 sigma of its nearest mode; a mode is captured
when at least one high-quality sample is nearest to it; reverse KL compares the histogram of
high-quality samples over the modes with the uniform distribution.
"""

from __future__ import annotations

import math

import torch


def mode_assignment(points: torch.Tensor, modes: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest mode of every point, and whether the point is within 3 sigma of it."""
    distances = torch.cdist(points.double(), modes.double())
    nearest, which = distances.min(dim=1)
    return which, nearest <= 3 * sigma


def mixture_metrics(points: torch.Tensor, modes: torch.Tensor, sigma: float) -> dict[str, float]:
    points = points.reshape(len(points), -1)
    finite = torch.isfinite(points).all(dim=1)
    which, good = mode_assignment(points[finite].nan_to_num(), modes, sigma)
    counts = torch.bincount(which[good], minlength=len(modes)).double()
    return {
        "modes": float((counts > 0).sum()),
        "high_quality": float(good.sum()) / max(len(points), 1),
        "reverse_kl": histogram_kl(counts, torch.full_like(counts, 1.0 / len(modes))),
    }


def histogram_kl(counts: torch.Tensor, reference: torch.Tensor) -> float:
    """KL(counts/total || reference); log(K) (all mass on one mode) when there is no mass at all."""
    total = counts.sum()
    if total <= 0:
        return math.log(len(counts))
    p = counts / total
    q = reference / reference.sum()
    mask = p > 0
    return float((p[mask] * (p[mask] / q[mask].clamp_min(1e-12)).log()).sum())
