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
