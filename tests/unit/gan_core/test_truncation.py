"""Jacobian-based truncation: the stretch it measures, the latents it keeps, where it applies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from gan_core.config import ConfigError, load_config, preset_path
from gan_core.data import load_dataset
from gan_core.metrics import Evaluator
from gan_core.metrics.evaluate import generate
from gan_core.models.parts import Generator
from gan_core.models.truncation import draw_latents, stretch, stretch_threshold, untruncated
from gan_core.training import build_models


class TwoModes(nn.Module):
    """x = (2 tanh(30 z0), 0.1 z1): two modes at x0 = ±2 joined by a bridge where z0 is near 0."""

    def __init__(self) -> None:
        super().__init__()
        self.steepness = nn.Parameter(torch.tensor(30.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([2 * torch.tanh(self.steepness * z[:, 0]), 0.1 * z[:, 1]], dim=1)


def torn_generator(truncation: float) -> Generator:
    return Generator(TwoModes(), latent_dim=2, sample_shape=(2,), truncation=truncation)


def test_exact_stretch_is_the_squared_frobenius_norm_of_the_jacobian():
    z = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    sech2 = 1 / torch.cosh(30 * z[:, 0]) ** 2
    expected = (60 * sech2) ** 2 + 0.1**2
    torch.testing.assert_close(stretch(torn_generator(0.9), z), expected, rtol=1e-4, atol=1e-6)


def test_large_latents_get_an_unbiased_estimate_of_the_stretch():
    torch.manual_seed(0)
    linear = nn.Linear(64, 10, bias=False)
    generator = Generator(linear, latent_dim=64, sample_shape=(10,), truncation=0.9)
    estimates = stretch(generator, torch.randn(2048, 64))
    frobenius = float(linear.weight.detach().pow(2).sum())
    assert float(estimates.mean()) == pytest.approx(frobenius, rel=0.05)
    assert float(estimates.std()) > 0  # an estimate per sample, not the exact value


def test_untruncated_generators_draw_exactly_the_prior():
    drawn = draw_latents(torn_generator(1.0), 500, torch.Generator().manual_seed(3))
    torch.testing.assert_close(drawn, torch.randn(500, 2, generator=torch.Generator().manual_seed(3)))


def test_truncation_keeps_the_latents_that_stretch_least_and_takes_samples_off_the_bridge():
    generator = torn_generator(0.8)
    threshold = stretch_threshold(generator)
    calibration = stretch(generator, torch.randn(20_000, 2, generator=torch.Generator().manual_seed(9)))
    assert float((calibration <= threshold).double().mean()) == pytest.approx(0.8, abs=0.02)

    latents = draw_latents(generator, 2000, torch.Generator().manual_seed(1))
    assert latents.shape == (2000, 2)
    assert bool((stretch(generator, latents) <= threshold).all())
    on_bridge = lambda x: float((x[:, 0].abs() < 1.8).double().mean())  # noqa: E731
    truncated, _ = generate(generator, 2000, seed=1)
    with untruncated(generator):
        plain, _ = generate(generator, 2000, seed=1)
    assert generator.truncation == 0.8  # restored
    assert on_bridge(plain) > 0.03 and on_bridge(truncated) < 0.01, (on_bridge(plain), on_bridge(truncated))
    # Both modes keep their share: truncation removes bridges, not modes.
    assert float((truncated[:, 0] > 0).double().mean()) == pytest.approx(0.5, abs=0.04)


def test_a_diverged_generator_is_sampled_as_it_is():
    generator = Generator(nn.Linear(2, 2), latent_dim=2, sample_shape=(2,), truncation=0.9)
    with torch.no_grad():
        generator.body.weight.fill_(float("nan"))
    latents = draw_latents(generator, 10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(latents, torch.randn(10, 2, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize(
    "preset, value, message",
    [
        ("grid-hq", "0", r"model.truncation=0.0 is not allowed: a number in \[0.05, 1\]"),
        ("grid-hq", "1.5", r"model.truncation=1.5 is not allowed"),
        ("digits-acgan", "0.9", "1 for conditional and translation models"),
        ("discogan-toy", "0.9", "1 for conditional and translation models"),
    ],
)
def test_config_refuses_truncation_where_it_cannot_apply(preset, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(preset_path(preset), [f"model.truncation={value}"])


def test_built_generators_carry_the_configured_truncation_into_evaluation():
    config = load_config(preset_path("grid-hq"), ["train.steps=1"])
    data = load_dataset(config.data.name, n_train=1000)
    generator = build_models(config, data).generator
    assert generator.truncation == 0.9
    report = Evaluator(data, config.eval).evaluate(generator)
    assert 0 <= report["high_quality"]["value"] <= 1


def test_served_generator_samples_with_the_threshold_it_calibrated_at_load(tmp_path: Path):
    mlflow = pytest.importorskip("mlflow")
    from pipelines.tracking.model import save_generator_model

    config = load_config(preset_path("grid-hq"))
    data = load_dataset(config.data.name, n_train=1000)
    generator = build_models(config, data).generator.eval()
    model = mlflow.pyfunc.load_model(str(save_generator_model(generator, config, tmp_path / "model")))
    served = model.predict(pd.DataFrame({"count": [50], "seed": [4]}))
    assert model.unwrap_python_model().threshold == pytest.approx(stretch_threshold(generator))
    with torch.no_grad():
        expected = generator(draw_latents(generator, 50, torch.Generator().manual_seed(4))).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-6)
