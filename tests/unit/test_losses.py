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
