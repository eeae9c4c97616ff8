"""Adversarial losses, by name, and the penalties that regularise the discriminator.

Each loss turns discriminator logits into a discriminator loss and a generator loss. The
discriminator's logits are raw scores; ``score`` maps them to what is worth plotting
(D(x) as a probability for the cross-entropy losses, the critic value otherwise).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_core.registry import Registry


class AdversarialLoss:
    supports_label_smoothing = True
    gradient_penalty = False  # WGAN-GP scores interpolates as well

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        return self.generator_terms(fake).mean()

    def generator_terms(self, fake: torch.Tensor) -> torch.Tensor:
        """G's loss for each fake logit, unreduced (top-k training averages a subset)."""
        raise NotImplementedError

    def score(self, logit: torch.Tensor) -> torch.Tensor:
        return logit


LOSSES: Registry[type[AdversarialLoss]] = Registry("loss")


def _bce(logit: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))


@LOSSES.register("minimax")
class Minimax(AdversarialLoss):
    """Goodfellow et al.'s original game: G minimises log(1 - D(G(z))) (saturates early on)."""

    def discriminator(self, real, fake, real_target=1.0):
        return _bce(real, real_target) + _bce(fake, 0.0)

    def generator_terms(self, fake):
        return -F.softplus(fake)  # log(1 - sigmoid(f)) = -softplus(f)

    def score(self, logit):
        return torch.sigmoid(logit)


@LOSSES.register("nonsaturating")
class NonSaturating(Minimax):
    """The same D, but G maximises log D(G(z)): strong gradients while D wins (Goodfellow et al.)."""

    def generator_terms(self, fake):
        return F.softplus(-fake)


@LOSSES.register("wgan-gp")
class WassersteinGP(AdversarialLoss):
    """Wasserstein critic with a gradient penalty on interpolates (Gulrajani et al. 2017)."""

    supports_label_smoothing = False
    gradient_penalty = True

    def discriminator(self, real, fake, real_target=1.0):
        return fake.mean() - real.mean()

    def generator_terms(self, fake):
        return -fake


@LOSSES.register("hinge")
class Hinge(AdversarialLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018)."""

    supports_label_smoothing = False

    def discriminator(self, real, fake, real_target=1.0):
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()

    def generator_terms(self, fake):
        return -fake


@LOSSES.register("least-squares")
class LeastSquares(AdversarialLoss):
    """Least-squares GAN (Mao et al. 2017), targets 0 for fake and 1 for real."""

    def discriminator(self, real, fake, real_target=1.0):
        return 0.5 * ((real - real_target).pow(2).mean() + fake.pow(2).mean())

    def generator_terms(self, fake):
        return 0.5 * (fake - 1.0).pow(2)


# Both penalties average over `inputs[rows]`, the samples `logit` judged. D scores real, fake and
# interpolated samples in one batch; the other rows have no gradient to `logit` (or, through
# batch norm, an incidental one) and must not dilute the mean.


def input_gradient_penalty(logit: torch.Tensor, inputs: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
    """Mean squared norm of dD/dx per sample: R1 when `inputs[rows]` are real (Mescheder et al. 2018)."""
    (grad,) = torch.autograd.grad(logit.sum(), inputs, create_graph=True)
    return grad[rows].float().pow(2).flatten(1).sum(1).mean()


def unit_gradient_penalty(logit: torch.Tensor, inputs: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
    """WGAN-GP: (||dD/dx|| - 1)^2 on interpolates between real and fake (`inputs[rows]`)."""
    (grad,) = torch.autograd.grad(logit.sum(), inputs, create_graph=True)
    return (grad[rows].float().flatten(1).norm(dim=1) - 1.0).pow(2).mean()
