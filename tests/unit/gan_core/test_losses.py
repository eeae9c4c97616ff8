import math

import pytest
import torch

from gan_core.losses import LOSSES, input_gradient_penalty, unit_gradient_penalty


def test_registry_holds_the_five_losses():
    assert set(LOSSES.names()) == {"minimax", "nonsaturating", "wgan-gp", "hinge", "least-squares"}


def test_cross_entropy_values_at_zero_logits():
    zero = torch.zeros(4)
    for name in ("minimax", "nonsaturating"):
        assert LOSSES.get(name)().discriminator(zero, zero).item() == pytest.approx(2 * math.log(2))


def test_minimax_saturates_where_nonsaturating_does_not():
    # Early in training D rejects fakes confidently (logit -8): the minimax G gradient vanishes.
    gradients = {}
    for name in ("minimax", "nonsaturating"):
        fake = torch.full((4,), -8.0, requires_grad=True)
        LOSSES.get(name)().generator(fake).backward()
        gradients[name] = fake.grad.abs().sum().item()
    assert gradients["minimax"] < 1e-3 < 0.5 < gradients["nonsaturating"]


def test_label_smoothing_moves_the_real_target():
    loss = LOSSES.get("nonsaturating")()
    confident = torch.full((4,), 10.0)
    assert loss.discriminator(confident, -confident, 0.9) > loss.discriminator(confident, -confident, 1.0)


def test_hinge_and_least_squares_are_zero_at_their_optimum():
    assert LOSSES.get("hinge")().discriminator(torch.full((3,), 2.0), torch.full((3,), -2.0)).item() == 0
    assert LOSSES.get("least-squares")().discriminator(torch.ones(3), torch.zeros(3)).item() == 0
    assert LOSSES.get("least-squares")().generator(torch.ones(3)).item() == 0


def test_wgan_critic_difference():
    loss = LOSSES.get("wgan-gp")()
    assert loss.gradient_penalty and not loss.supports_label_smoothing
    assert loss.discriminator(torch.tensor([3.0]), torch.tensor([1.0])).item() == -2.0


def test_penalties():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.tensor([3.0, 0.0, 4.0])
    logit = x @ w  # gradient norm 5 everywhere
    assert input_gradient_penalty(logit, x).item() == pytest.approx(25.0)
    assert unit_gradient_penalty(x @ w, x).item() == pytest.approx(16.0)


@pytest.mark.parametrize(("loss", "r1_weight", "metric", "expected"), [
    ("nonsaturating", 1.0, "r1_penalty", 25.0),  # ||dD/dx||^2 on the real rows
    ("wgan-gp", 0.0, "gradient_penalty", 16.0),  # (||dD/dx|| - 1)^2 on the interpolates
])  # fmt: skip
def test_the_step_averages_each_penalty_over_its_own_rows_only(loss, r1_weight, metric, expected):
    """D scores real, fake (and interpolated) rows in one batch; the penalties were averaged over all
    of them, so R1 came out at half its weight and WGAN-GP at a third (plus a constant 2/3)."""
    import contextlib

    from torch import nn

    from gan_core.config import LossConfig
    from gan_core.models.parts import Discriminator
    from gan_core.training.step import StepContext, discriminator_step

    critic = Discriminator(nn.Identity(), 2)
    with torch.no_grad():  # D(x) = 3 x0 + 4 x1: a gradient of norm 5 at every input
        critic.head.weight.copy_(torch.tensor([[3.0, 4.0]]))
        critic.head.bias.zero_()
    config = LossConfig(name=loss, r1_weight=r1_weight)
    ctx = StepContext(LOSSES.get(loss)(), config, torch.Generator().manual_seed(0), contextlib.nullcontext(), 0)
    optimizer = torch.optim.SGD(critic.parameters(), lr=0.0)
    metrics = discriminator_step(critic, optimizer, torch.randn(8, 2), torch.randn(8, 2), None, ctx, measure=False)
    assert metrics[metric].item() == pytest.approx(expected)
