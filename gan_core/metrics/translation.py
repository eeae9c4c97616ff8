"""What a translation model (DiscoGAN) is judged by, on held-out samples of domain A.

- Class accuracy: the feature classifier, trained on domain B, names the class of the input
  digit in its translation A->B (the relation kept what matters). Chance is 1/classes.
- Reconstruction error: mean squared error between an input and its round trip A->B->A.
- Paired error, where the dataset knows the true counterpart of each held-out input: mean
  squared error between the translation and that counterpart (a diagnostic: DiscoGAN may find
  another relation that keeps the class, and nothing in training points it at this one).
- Mode mapping (2-D toy): how many distinct modes of B the modes of A are sent to, each A mode
  counted once by where most of its high-quality translations land (Kim et al.'s toy: a
  plain GAN sends them all to one or two).
"""

from __future__ import annotations

import torch

from gan_core.metrics.mixtures import mode_assignment
from gan_core.models import Translator


@torch.no_grad()
def translate(translator: Translator, inputs: torch.Tensor, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(A->B, A->B->A) of `inputs` on CPU in float32, in eval mode."""
    was_training = translator.training
    translator.eval()
    device = next(translator.parameters()).device
    translations, round_trips = [], []
    for chunk in inputs.split(batch):
        fake_b = translator.a_to_b(chunk.to(device))
        translations.append(fake_b.float().cpu())
        round_trips.append(translator.b_to_a(fake_b).float().cpu())
    translator.train(was_training)
    return torch.cat(translations), torch.cat(round_trips)


def per_sample_squared_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).pow(2).flatten(1).mean(1)


def translation_accuracy(probs: torch.Tensor, source_labels: torch.Tensor) -> float:
    return float((probs.argmax(1) == source_labels).double().mean())


def mapped_modes(
    translations: torch.Tensor, source_modes: torch.Tensor, target_modes: torch.Tensor, sigma: float
) -> float:
    """Distinct modes of B that some mode of A is mostly sent to (high-quality translations only)."""
    which, good = mode_assignment(translations.reshape(len(translations), -1), target_modes, sigma)
    destinations = set()
    for mode in source_modes.unique():
        landed = which[good & (source_modes == mode)]
        if len(landed):
            destinations.add(int(torch.bincount(landed).argmax()))
    return float(len(destinations))
