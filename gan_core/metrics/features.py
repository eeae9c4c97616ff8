"""Metrics in the feature classifier's space: Fréchet distance, Inception-style score,
precision/recall (Kynkäänniemi et al. 2019, k=3), density/coverage (Naeem et al. 2020, k=5),
class coverage and class-histogram KL, and the stacked-digit modes (Metz et al. 2017).
"""

from __future__ import annotations

import numpy as np
import torch

from gan_core.metrics.mixtures import histogram_kl


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2) between Gaussian fits of the features.

    Tr((S_r S_f)^1/2) is computed as the sum of square roots of the eigenvalues of the
    symmetric matrix S_r^1/2 S_f S_r^1/2, which stays stable when a collapsed generator
    makes S_f singular.
    """
    mu_r, mu_f = real.double().mean(0).numpy(), fake.double().mean(0).numpy()
    cov_r, cov_f = np.cov(real.double().numpy(), rowvar=False), np.cov(fake.double().numpy(), rowvar=False)
    root_r = _psd_sqrt(cov_r)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_r @ cov_f @ root_r), 0, None)).sum()
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2 * cross)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def inception_score(probs: torch.Tensor) -> float:
    """exp E_x KL(p(y|x) || p(y)): high when each sample is confidently one class and all classes appear."""
    probs = probs.double().clamp_min(1e-12)
    marginal = probs.mean(0, keepdim=True)
    return float((probs * (probs.log() - marginal.log())).sum(1).mean().exp())


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    distances = torch.cdist(x, x)
    return distances.kthvalue(k + 1, dim=1).values  # +1: each point is its own nearest neighbour


def prdc(real: torch.Tensor, fake: torch.Tensor, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """Improved precision/recall with k=3 and density/coverage with k=5, on features."""
    real, fake = real.double(), fake.double()
    cross = torch.cdist(real, fake)  # (real, fake)
    real_r3, fake_r3 = _kth_neighbour_radius(real, k_pr), _kth_neighbour_radius(fake, k_pr)
    real_r5 = _kth_neighbour_radius(real, k_dc)
    precision = (cross <= real_r3[:, None]).any(0).double().mean()
    recall = (cross <= fake_r3[None, :]).any(1).double().mean()
    inside5 = cross <= real_r5[:, None]
    density = inside5.double().sum(0).mean() / k_dc
    coverage = (cross.min(1).values <= real_r5).double().mean()
    return {
        "precision": float(precision),
        "recall": float(recall),
        "density": float(density),
        "coverage": float(coverage),
    }


def class_histogram_metrics(probs: torch.Tensor, data_histogram: torch.Tensor, share: float = 0.25) -> dict[str, float]:
    """Class coverage: fraction of classes whose share of samples is at least `share` of their
    share in the data. Class KL: KL(predicted class histogram || data class histogram)."""
    counts = torch.bincount(probs.argmax(1), minlength=len(data_histogram)).double()
    data = data_histogram.double() / data_histogram.sum()
    covered = (counts / counts.sum()) >= share * data
    return {"class_coverage": float(covered.double().mean()), "class_kl": histogram_kl(counts, data)}


def stacked_mode_metrics(channel_probs: torch.Tensor, channels: int, base: int) -> dict[str, float]:
    """Modes (distinct digit triples seen) and KL to the uniform over base**channels modes."""
    digits = channel_probs.argmax(1).reshape(-1, channels)
    weights = base ** torch.arange(channels - 1, -1, -1)
    modes = (digits * weights).sum(1)
    counts = torch.bincount(modes, minlength=base**channels).double()
    return {"stacked_modes": float((counts > 0).sum()), "stacked_kl": histogram_kl(counts, torch.ones_like(counts))}
