"""The two phases of a translation model's step (DiscoGAN, Kim et al. 2017).

Discriminators: D_A tells real A from translations B->A, D_B tells real B from translations
A->B, each with the configured adversarial loss (and its penalties). Generators: each
direction tries to fool the other domain's discriminator, and each round trip (A->B->A and
B->A->B) must give its input back:

    L_G = L_GAN(B) + L_GAN(A) + reconstruction_weight * (d(A, A->B->A) + d(B, B->A->B))

with d the mean squared or absolute error (`loss.reconstruction`). The reconstruction terms are
what make the two mappings each other's inverse, so distinct inputs cannot collapse onto one
output. One batch of A and one of B, drawn independently, serve both phases of a step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_core.models import DomainCritics, Translator
from gan_core.models.critic_norm import scoring_sources, source_norms
from gan_core.training.state import TrainState
from gan_core.training.step import StepContext, grad_norm, input_penalties, with_instance_noise

RECONSTRUCTION = {"mse": F.mse_loss, "l1": F.l1_loss}


def translation_discriminator_step(
    d_train: nn.Module,
    translator: Translator,
    opt_d: torch.optim.Optimizer,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    ctx: StepContext,
    measure: bool,
) -> dict[str, torch.Tensor]:
    with torch.no_grad(), ctx.autocast:
        fake_b, fake_a = translator.a_to_b(real_a), translator.b_to_a(real_b)
    r1_weight = ctx.next_r1_weight()  # one update of both critics
    scored_a, parts = _critic_inputs(real_a, fake_a.to(real_a.dtype), ctx, r1_weight > 0)
    scored_b, _ = _critic_inputs(real_b, fake_b.to(real_b.dtype), ctx, r1_weight > 0)
    with ctx.autocast, scoring_sources(source_norms(d_train), parts):
        logit_a, logit_b = d_train(scored_a, scored_b)  # both critics in one forward, for DDP
    loss_a, metrics_a = _critic_loss(logit_a.float(), scored_a, parts, ctx, r1_weight)
    loss_b, metrics_b = _critic_loss(logit_b.float(), scored_b, parts, ctx, r1_weight)
    loss = loss_a + loss_b

    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    metrics = {name: metrics_a[name] + metrics_b[name] for name in metrics_a}
    for name in ("d_real", "d_fake"):  # scores read as averages over the two domains
        metrics[name] = metrics[name] / 2
    if measure:
        metrics["d_grad_norm"] = grad_norm(opt_d)
    opt_d.step()
    metrics["d_loss"] = loss.detach()
    return metrics


def _critic_inputs(real: torch.Tensor, fake: torch.Tensor, ctx: StepContext, r1: bool) -> tuple[torch.Tensor, int]:
    """Real and fake (and, for WGAN-GP, interpolates) in one batch, as the GAN step scores them."""
    real, fake = with_instance_noise(real, ctx), with_instance_noise(fake, ctx)
    inputs = [real, fake]
    if ctx.loss.gradient_penalty:
        mix = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=ctx.noise, device=real.device)
        inputs.append(torch.lerp(real, fake, mix))
    scored = torch.cat(inputs)
    scored.requires_grad_(ctx.loss.gradient_penalty or r1)
    return scored, len(inputs)


def _critic_loss(
    logits: torch.Tensor, scored: torch.Tensor, parts: int, ctx: StepContext, r1_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    chunks = logits.chunk(parts)
    real_logit, fake_logit = chunks[0], chunks[1]
    loss = ctx.loss.discriminator(real_logit, fake_logit, 1.0 - ctx.loss_cfg.label_smoothing)
    metrics = {
        "d_adv_loss": loss.detach(),
        "d_real": ctx.loss.score(real_logit.detach()).mean(),
        "d_fake": ctx.loss.score(fake_logit.detach()).mean(),
    }
    return loss + input_penalties(chunks, scored, ctx, r1_weight, metrics), metrics


def translation_generator_step(
    g_train: nn.Module,
    critics: DomainCritics,
    opt_g: torch.optim.Optimizer,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    ctx: StepContext,
    measure: bool,
) -> dict[str, torch.Tensor]:
    # The plain critics (not their DDP wrapper) judge, frozen, as in the GAN generator step.
    critics.requires_grad_(False)
    with ctx.autocast:
        cycle = g_train(real_a, real_b)
        logit_a, logit_b = critics(with_instance_noise(cycle.fake_a, ctx), with_instance_noise(cycle.fake_b, ctx))
    adversarial = ctx.loss.generator(logit_b.float()) + ctx.loss.generator(logit_a.float())
    distance = RECONSTRUCTION[ctx.loss_cfg.reconstruction]
    rec_a, rec_b = distance(cycle.rec_a.float(), real_a), distance(cycle.rec_b.float(), real_b)
    loss = adversarial + ctx.loss_cfg.reconstruction_weight * (rec_a + rec_b)

    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    metrics = {"g_adv_loss": adversarial.detach(), "g_rec_a": rec_a.detach(), "g_rec_b": rec_b.detach()}
    if measure:
        metrics["g_grad_norm"] = grad_norm(opt_g)
    opt_g.step()
    critics.requires_grad_(True)
    metrics["g_loss"] = loss.detach()
    return metrics


class TranslationPhases:
    """Phase 1 (both critics, on a fresh batch of A and an independent one of B) and phase 2
    (both generators, on the last batches of phase 1) of a translation model."""

    def __init__(self, state: TrainState, ctx: StepContext, d_train: nn.Module, g_train: nn.Module) -> None:
        if state.target_batches is None:
            raise ValueError("a translation model needs a two-domain dataset (domain B in dataset.target)")
        self.state, self.ctx, self.d_train, self.g_train = state, ctx, d_train, g_train
        self.real_a = self.real_b = None

    def discriminator(self, measure: bool) -> dict[str, torch.Tensor]:
        state = self.state
        self.real_a = state.batches.next()[0].to(state.device, non_blocking=True)
        self.real_b = state.target_batches.next()[0].to(state.device, non_blocking=True)
        return translation_discriminator_step(
            self.d_train, state.generator, state.opt_d, self.real_a, self.real_b, self.ctx, measure
        )

    def generator(self, measure: bool) -> dict[str, torch.Tensor]:
        state = self.state
        return translation_generator_step(
            self.g_train, state.discriminator, state.opt_g, self.real_a, self.real_b, self.ctx, measure
        )
