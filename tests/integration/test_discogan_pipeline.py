"""A DiscoGAN takes the same road as the other GANs: Ray Train, MLflow registry, promotion, pyfunc serving."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from gan_core.config import load_config, preset_path
from pipelines.registry.promotion import CHAMPION, promote
from pipelines.train.driver import train_distributed
from pipelines.train.scaling import Scaling

pytestmark = pytest.mark.integration
MODEL = "disco-digits"


def test_discogan_trains_on_ray_registers_promotes_and_serves_translations(settings, ray_cluster):
    config = load_config(preset_path("discogan-digits"), ["train.steps=300", "train.checkpoint_every=150"])
    result = train_distributed(
        config, "disco-2w", Scaling(workers=2), settings, log=lambda _: None, register_as=MODEL, bootstrap=0
    )
    assert result.steps == 300 and result.registered_version == "1"
    assert result.metrics["translation_accuracy"]["value"] > 0.3  # chance is 0.1

    client = MlflowClient(settings.tracking_uri)
    decision = promote(client, settings, MODEL, resamples=20, log=lambda _: None)
    assert decision.gates and decision.promoted == all(decision.gates.values())

    mlflow.set_tracking_uri(settings.tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    digits = np.linspace(-1, 1, 3 * 64).reshape(3, 64)
    table = pd.DataFrame({"images": list(digits), "direction": ["a_to_b", "b_to_a", "a_to_b"]})
    out = np.asarray(served.predict(table))
    assert out.shape[0] == 3 and np.isfinite(out).all() and np.abs(out).max() <= 1.0
    if decision.promoted:
        assert client.get_model_version_by_alias(MODEL, CHAMPION).version == "1"
