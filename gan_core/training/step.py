"""One discriminator update and one generator update: the two phases of a GAN step.

`GANPhases` runs them for a GAN that draws samples from noise; translation models (DiscoGAN)
have their own phases in `translation_step.py`, and the loop picks by the model's kind.

The discriminator scores real and fake samples in a single forward pass: one forward per
backward keeps DistributedDataParallel simple, and the penalties' inputs (real samples for
R1, interpolates for WGAN-GP) ride along in the same batch. A critic's batch norm still keeps
each source's statistics apart (`models/critic_norm.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.config import LossConfig
from gan_core.losses import AdversarialLoss, input_gradient_penalty, unit_gradient_penalty
from gan_core.models import Discriminator
from gan_core.models.critic_norm import scoring_sources, source_norms
from gan_core.training.state import TrainState


@dataclass
class StepContext:
    """What both phases need besides the models: the objective and the run's randomness."""

    loss: AdversarialLoss
    loss_cfg: LossConfig
    noise: torch.Generator
    autocast: AbstractContextManager
    num_classes: int  # > 0 when G and D take labels
    instance_noise: float = 0.0  # the current (annealed) std
    top_k: float = 1.0  # the current fraction of fakes G learns from (top-k training)
    d_updates: int = 0  # discriminator updates so far, counted for lazy R1

    def next_r1_weight(self) -> float:
        """R1's weight in the discriminator update about to run. Lazy R1 (`loss.r1_every` = N,
        Karras et al. 2020) applies it on every Nth update only, N times as strong: the same
        penalty on average, without the double backward on the other N-1 updates."""
        every = self.loss_cfg.r1_every
        self.d_updates += 1
        return self.loss_cfg.r1_weight * every if (self.d_updates - 1) % every == 0 else 0.0


def discriminator_step(
    d_train: nn.Module,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None,
    ctx: StepContext,
    measure: bool,
) -> dict[str, torch.Tensor]:
    """One update of D on a real batch and a fake one (detached; conditional: of the same labels)."""
    batch = real.shape[0]
    fake_labels = labels
    fake = fake.to(real.dtype)
    real, fake = with_instance_noise(real, ctx), with_instance_noise(fake, ctx)

    inputs = [real, fake]
    if ctx.loss.gradient_penalty:
        mix = torch.rand((batch,) + (1,) * (real.dim() - 1), generator=ctx.noise, device=real.device)
        inputs.append(torch.lerp(real, fake, mix))
    scored = torch.cat(inputs)
    r1_weight = ctx.next_r1_weight()
    needs_input_grad = ctx.loss.gradient_penalty or r1_weight > 0
    scored.requires_grad_(needs_input_grad)
    scored_labels = labels.repeat(len(inputs)) if labels is not None else None

    with ctx.autocast, scoring_sources(source_norms(d_train), len(inputs)):
        out = d_train(scored, scored_labels)
    logits = out.logit.float().chunk(len(inputs))
    real_logit, fake_logit = logits[0], logits[1]
    loss = ctx.loss.discriminator(real_logit, fake_logit, 1.0 - ctx.loss_cfg.label_smoothing)
    metrics = {"d_adv_loss": loss.detach()}

    if out.class_logits is not None:  # AC-GAN: D also learns to name the class of real and fake
        cls_real, cls_fake = out.class_logits.float()[: 2 * batch].chunk(2)
        aux = F.cross_entropy(cls_real, labels) + F.cross_entropy(cls_fake, fake_labels)
        loss = loss + ctx.loss_cfg.aux_weight * aux
        metrics["d_aux_loss"] = aux.detach()
        metrics["d_class_acc"] = (cls_real.argmax(1) == labels).float().mean()
    loss = loss + input_penalties(logits, scored, ctx, r1_weight, metrics)

    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    if measure:
        metrics["d_grad_norm"] = grad_norm(opt_d)
    opt_d.step()
    metrics["d_loss"] = loss.detach()
    metrics["d_real"] = ctx.loss.score(real_logit.detach()).mean()
    metrics["d_fake"] = ctx.loss.score(fake_logit.detach()).mean()
    return metrics


def input_penalties(
    logits: Sequence[torch.Tensor],
    scored: torch.Tensor,
    ctx: StepContext,
    r1_weight: float,
    metrics: dict[str, torch.Tensor],
) -> torch.Tensor | float:
    """R1 on the real rows and WGAN-GP on the interpolates (`logits` = real, fake[, interpolates]
    chunks of one forward over `scored`); each penalty's value goes into `metrics`."""
    penalty: torch.Tensor | float = 0.0
    batch = logits[0].shape[0]
    if r1_weight > 0:
        r1 = input_gradient_penalty(logits[0], scored, slice(0, batch))
        penalty = penalty + 0.5 * r1_weight * r1
        metrics["r1_penalty"] = r1.detach()
    if ctx.loss.gradient_penalty:
        gp = unit_gradient_penalty(logits[2], scored, slice(2 * batch, 3 * batch))
        penalty = penalty + ctx.loss_cfg.gp_weight * gp
        metrics["gradient_penalty"] = gp.detach()
    return penalty


def generator_step(
    discriminator: Discriminator,
    opt_g: torch.optim.Optimizer,
    fake: torch.Tensor,
    fake_labels: torch.Tensor | None,
    ctx: StepContext,
    measure: bool,
) -> dict[str, torch.Tensor]:
    """One update of G through D's judgement of `fake` (drawn with autograd on)."""
    # The plain discriminator (not its DDP wrapper) judges here, with its weights frozen:
    # no gradient for D's parameters is computed, and DDP never sees a half-used backward.
    discriminator.requires_grad_(False)
    with ctx.autocast:
        out = discriminator(with_instance_noise(fake, ctx), fake_labels)
    loss = generator_loss(out.logit.float(), ctx)
    metrics = {"g_adv_loss": loss.detach()}
    if out.class_logits is not None:
        aux = F.cross_entropy(out.class_logits.float(), fake_labels)
        loss = loss + ctx.loss_cfg.aux_weight * aux
        metrics["g_aux_loss"] = aux.detach()
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    if measure:
        metrics["g_grad_norm"] = grad_norm(opt_g)
    opt_g.step()
    discriminator.requires_grad_(True)
    metrics["g_loss"] = loss.detach()
    return metrics


def generator_loss(fake_logit: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """G's adversarial loss, averaged over all fakes or, in top-k training, over the k that D
    scores highest: the fakes D already finds realistic pull G towards the modes, while the
    worst ones, between modes, would pull samples off them (Sinha et al. 2020)."""
    if ctx.top_k >= 1:
        return ctx.loss.generator(fake_logit)
    keep = max(1, round(ctx.top_k * fake_logit.numel()))
    best = fake_logit.flatten().topk(keep).values
    return ctx.loss.generator_terms(best).mean()


def _random_labels(batch: int, ctx: StepContext, device: torch.device) -> torch.Tensor | None:
    if ctx.num_classes == 0:
        return None
    return torch.randint(ctx.num_classes, (batch,), generator=ctx.noise, device=device)


def with_instance_noise(x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """ganhacks: blur the supports of real and fake so D cannot separate them perfectly early on."""
    if ctx.instance_noise <= 0:
        return x
    return x + ctx.instance_noise * torch.randn(x.shape, generator=ctx.noise, device=x.device, dtype=x.dtype)


def grad_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


class GANPhases:
    """Phase 1 (a discriminator update on a fresh batch) and phase 2 (a generator update) of
    a GAN that draws samples from noise, on this worker's slice of each batch.

    With `train.reuse_fakes` the generator update judges the fakes of the last discriminator
    update again (as the PyTorch DCGAN example does) instead of drawing new ones: one forward
    pass of G less per step. Those fakes are then drawn with autograd on, for G's backward.
    """

    def __init__(self, state: TrainState, ctx: StepContext, d_train: nn.Module, g_train: nn.Module) -> None:
        self.state, self.ctx, self.d_train, self.g_train = state, ctx, d_train, g_train
        self.batches = state.batches  # where real batches come from (a CUDA graph swaps in fixed buffers)
        self.reuse_fakes = state.config.train.reuse_fakes
        self.last_fakes: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def discriminator(self, measure: bool) -> dict[str, torch.Tensor]:
        state, ctx = self.state, self.ctx
        real, labels = self.batches.next()
        real = real.to(state.device, non_blocking=True)
        labels = labels.to(state.device, non_blocking=True) if labels is not None and ctx.num_classes else None
        # Conditional: fakes of the same classes as the real batch.
        fake = self._draw_fakes(real.shape[0], labels, for_generator_update=self.reuse_fakes)
        self.last_fakes = (fake, labels) if self.reuse_fakes else None
        return discriminator_step(self.d_train, state.opt_d, real, fake.detach(), labels, ctx, measure)

    def generator(self, measure: bool) -> dict[str, torch.Tensor]:
        state = self.state
        if self.last_fakes is not None:
            (fake, labels), self.last_fakes = self.last_fakes, None
        else:
            labels = _random_labels(state.batches.local_batch, self.ctx, state.device)
            fake = self._draw_fakes(state.batches.local_batch, labels, for_generator_update=True)
        return generator_step(state.discriminator, state.opt_g, fake, labels, self.ctx, measure)

    def _draw_fakes(self, batch: int, labels: torch.Tensor | None, for_generator_update: bool) -> torch.Tensor:
        """Fakes for G's update come through its training wrapper (DDP) with autograd on; fakes
        only D learns from come from the plain G without a graph."""
        latent = self.state.generator.sample_latent(batch, self.ctx.noise, self.state.device)
        generator = self.g_train if for_generator_update else self.state.generator
        with torch.set_grad_enabled(for_generator_update), self.ctx.autocast:
            return generator(latent, labels)
