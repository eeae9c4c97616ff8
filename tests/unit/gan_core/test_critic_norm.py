"""A critic's batch norm keeps the statistics of real and fake rows apart within the step's one
forward pass (ganhacks; the DCGAN reference scores reals and fakes in separate passes)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from gan_core.config import LossConfig, load_config, preset_path
from gan_core.losses import LOSSES
from gan_core.models import MODELS
from gan_core.models.critic_norm import CriticBatchNorm2d, convert_sync_batchnorm, scoring_sources, source_norms
from gan_core.training.step import StepContext, discriminator_step


def build_gan(model, shape, classes):
    return MODELS.get(model.name)(model, shape, classes)


def test_one_pass_over_real_and_fake_equals_a_pass_over_each():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 3, 4, 4) + 2.0, torch.randn(8, 3, 4, 4) - 1.0
    critic_norm, plain = CriticBatchNorm2d(3), nn.BatchNorm2d(3)
    with scoring_sources([critic_norm], 2):
        together = critic_norm(torch.cat([real, fake]))
    apart = torch.cat([plain(real), plain(fake)])
    torch.testing.assert_close(together, apart)
    torch.testing.assert_close(critic_norm.running_mean, plain.running_mean)  # two updates, as two passes make
    torch.testing.assert_close(critic_norm.running_var, plain.running_var)
    assert critic_norm.sources == 1  # back to one source once the critic's update is over
    mixed = nn.BatchNorm2d(3)(torch.cat([real, fake]))
    assert not torch.allclose(together, mixed, atol=1e-2)  # what a plain norm did: sources mixed


def test_outside_the_critics_update_and_in_eval_it_is_a_plain_batch_norm():
    x = torch.randn(6, 2, 3, 3)
    critic_norm, plain = CriticBatchNorm2d(2), nn.BatchNorm2d(2)
    torch.testing.assert_close(critic_norm(x), plain(x))
    critic_norm.eval(), plain.eval()
    with scoring_sources([critic_norm], 2):
        torch.testing.assert_close(critic_norm(x), plain(x))
    critic_norm.load_state_dict(plain.state_dict())  # checkpoints of plain batch norm load unchanged


def test_a_batch_norm_critics_real_scores_do_not_depend_on_the_fakes_beside_them():
    """Before, D normalised real rows with statistics of real and fake mixed: the same real batch
    scored differently next to different fakes."""
    config = load_config(preset_path("digits-dcgan"), ["model.d_norm=batch"])
    gan = build_gan(config.model, (1, 8, 8), 0)
    assert source_norms(gan.discriminator)
    real = torch.rand(16, 1, 8, 8) * 2 - 1

    def d_real_next_to(fake: torch.Tensor) -> float:
        critic = build_gan(config.model, (1, 8, 8), 0).discriminator
        critic.load_state_dict(gan.discriminator.state_dict())
        ctx = StepContext(LOSSES.get("nonsaturating")(), LossConfig(), torch.Generator(), contextlib.nullcontext(), 0)
        optimizer = torch.optim.SGD(critic.parameters(), lr=0.0)
        return discriminator_step(critic, optimizer, real, fake, None, ctx, measure=False)["d_real"].item()

    assert d_real_next_to(torch.zeros(16, 1, 8, 8)) == pytest.approx(d_real_next_to(torch.randn(16, 1, 8, 8) * 3))


def test_sync_batch_norm_keeps_critics_per_source_and_shares_their_weights():
    config = load_config(preset_path("digits-dcgan"), ["model.d_norm=batch"])
    gan = build_gan(config.model, (1, 16, 16), 0)
    critic_norms = source_norms(gan.discriminator)
    weights = [m.weight for m in critic_norms]
    critics = convert_sync_batchnorm(gan.discriminator)
    synced = source_norms(critics)
    assert len(synced) == len(critic_norms) and all(isinstance(m, nn.SyncBatchNorm) for m in synced)
    assert [m.weight for m in synced] == weights  # the same Parameter objects: the optimiser's
    generator_norms = sum(isinstance(m, nn.BatchNorm2d) for m in gan.generator.modules())
    generator = convert_sync_batchnorm(gan.generator)
    assert generator_norms and sum(type(m) is nn.SyncBatchNorm for m in generator.modules()) == generator_norms


def test_a_compiled_critic_traces_whole_per_source_and_matches_eager():
    """`train.compile` (the fastest GPU step) compiles D: the per-source norm must not break its
    graph (the compiler then fuses each source's statistics, split and cat into D's kernels)."""
    from torch._dynamo.utils import counters

    config = load_config(preset_path("digits-dcgan"), ["model.d_norm=batch"])
    eager = build_gan(config.model, (1, 16, 16), 0).discriminator
    compiled = build_gan(config.model, (1, 16, 16), 0).discriminator
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    compiled.compile()
    batch = torch.cat([torch.rand(8, 1, 16, 16), torch.randn(8, 1, 16, 16) - 1]).requires_grad_()
    for sources in (2, 1, 2):  # the critic's update, G's update, the critic's again: no new graph
        scores = []
        for critic in (eager, compiled):
            critic.zero_grad()
            x = batch.detach().clone().requires_grad_()
            with scoring_sources(source_norms(critic), sources):
                logit = critic(x).logit
            logit.sum().backward()
            scores.append((logit, x.grad, [p.grad for p in critic.parameters()]))
        (logit, x_grad, grads), (c_logit, c_x_grad, c_grads) = scores
        torch.testing.assert_close(c_logit, logit, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(c_x_grad, x_grad, rtol=1e-4, atol=1e-5)
        for grad, c_grad in zip(grads, c_grads, strict=True):
            torch.testing.assert_close(c_grad, grad, rtol=1e-4, atol=1e-4)
    for norm, c_norm in zip(source_norms(eager), source_norms(compiled), strict=True):
        torch.testing.assert_close(c_norm.running_mean, norm.running_mean)
        torch.testing.assert_close(c_norm.running_var, norm.running_var)
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["graph_break"])  # one per source count
    assert not counters["graph_break"]
