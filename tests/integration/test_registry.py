"""Registry, promotion gate and serving against `mlflow server` with artifacts in a local S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from gan_core.config import load_config, preset_path
from gan_core.data import load_dataset
from gan_core.metrics import Evaluator
from gan_core.training import fit
from pipelines.registry.promotion import CHALLENGER, CHAMPION, PREVIOUS, promote, rollback
from pipelines.train.publish import TrainedRun, publish_generator
from tests.integration.services import free_port, service

pytestmark = pytest.mark.integration
MODEL = "ring-generator"


def _alias(client: MlflowClient, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(MODEL, alias).version
    except Exception:
        return None


@pytest.fixture(scope="module")
def trained():
    """Three generators of known quality: poor (fails the gates), fair, good."""
    data = load_dataset("ring", n_train=20000)
    made = {}
    for label, steps in (("poor", 60), ("fair", 800), ("good", 3000)):
        config = load_config(preset_path("ring"), [f"train.steps={steps}", "data.n_train=20000"])
        made[label] = (fit(config, data).sampler, config)
    return made


def _register(settings, trained, label: str) -> str:
    generator, config = trained[label]
    client = MlflowClient(settings.tracking_uri)
    from pipelines.tracking import runs as tracking

    run_id, _ = tracking.find_or_create_run(
        client, settings, f"{label}-{id(generator)}", config.flat(), {"dataset.name": "ring"}
    )
    evaluator = Evaluator(load_dataset("ring", n_train=20000), config.eval)
    tags = {"dataset.name": "ring", "dataset.version": "test", "config.hash": config.hash(), "code.version": "test"}
    run = TrainedRun(run_id, label, config, tags, config.train.steps)
    version = publish_generator(client, settings, run, generator, evaluator, register_as=MODEL).version
    client.set_terminated(run_id)
    return version


def test_register_promote_refuse_rollback_and_race(settings, trained):
    client = MlflowClient(settings.tracking_uri)
    fair = _register(settings, trained, "fair")
    assert _alias(client, CHALLENGER) == fair
    version = client.get_model_version(MODEL, fair)
    for tag in ("dataset.version", "config.hash", "code.version", "training.run_id", "metric.high_quality"):
        assert tag in version.tags, tag
    card = client.download_artifacts(version.run_id, "model_card.md")
    assert "| high_quality |" in Path(card).read_text()

    first = promote(client, settings, MODEL, resamples=50)  # no champion: the gates decide
    assert first.promoted and _alias(client, CHAMPION) == fair

    good = _register(settings, trained, "good")
    dry = promote(client, settings, MODEL, dry_run=True, resamples=50)
    assert dry.promoted and _alias(client, CHAMPION) == fair  # nothing moved
    better = promote(client, settings, MODEL, resamples=50)
    assert better.promoted and better.ci_low > 0, better
    assert _alias(client, CHAMPION) == good and _alias(client, PREVIOUS) == fair
    assert client.get_model_version(MODEL, good).tags["promotion.last"] == "promoted"
    assert client.get_model_version(MODEL, fair).tags[f"promotion.against.{good}"] == "replaced"

    again = promote(client, settings, MODEL, resamples=50)  # idempotent
    assert not again.promoted and again.reason.startswith(f"already the champion (promoted over version {fair}: ")
    assert again.ci_low == better.ci_low  # the figures it was promoted on
    assert _alias(client, CHAMPION) == good and _alias(client, PREVIOUS) == fair

    poor = _register(settings, trained, "poor")
    refused = promote(client, settings, MODEL, resamples=50)
    assert not refused.promoted and "failed gates" in refused.reason
    assert _alias(client, CHAMPION) == good
    assert promote(client, settings, MODEL, resamples=50).recorded  # same pair: the recorded decision

    assert rollback(client, settings, MODEL, log=lambda _: None) == (fair, good)
    assert _alias(client, CHAMPION) == fair and _alias(client, PREVIOUS) == good
    # The recorded "good beats fair" moves nothing now, and says so (it used to read as a promotion).
    undone = promote(client, settings, MODEL, version=good, resamples=50)
    assert undone.recorded and not undone.promoted and "rolled back since" in undone.reason, undone
    assert _alias(client, CHAMPION) == fair
    # Another margin is another protocol: decided again, not read back.
    assert not promote(client, settings, MODEL, version=good, margin=0.5, dry_run=True, resamples=50).recorded

    # Two promotions race: a good and a poor candidate against the fair champion.
    mlflow.set_tracking_uri(settings.tracking_uri)
    good_again = mlflow.register_model(client.get_model_version(MODEL, good).source, MODEL).version
    poor_again = mlflow.register_model(client.get_model_version(MODEL, poor).source, MODEL).version
    decisions = {}

    def run(version: str) -> None:
        decisions[version] = promote(client, settings, MODEL, version=version, resamples=50)

    threads = [threading.Thread(target=run, args=(v,)) for v in (poor_again, good_again)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert decisions[good_again].promoted and not decisions[poor_again].promoted
    assert _alias(client, CHAMPION) == good_again
    for version in (good_again, poor_again):  # no decision lost
        assert any(k.startswith("promotion.vs.") for k in client.get_model_version(MODEL, version).tags)


def test_champion_loads_anywhere_and_serves_over_rest(settings, trained, tmp_path: Path):
    client = MlflowClient(settings.tracking_uri)
    if _alias(client, CHAMPION) is None:
        _register(settings, trained, "good")
        promote(client, settings, MODEL, resamples=20)
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    import pandas as pd

    points = model.predict(pd.DataFrame({"count": [7], "seed": [3], "label": [-1]}))
    assert points.shape == (7, 2) and np.isfinite(points).all()

    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    # The scoring server execs `uvicorn` from PATH: the venv's bin must come first.
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with service(command, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", env, timeout=120):
        body = json.dumps({"dataframe_split": {"columns": ["count", "seed", "label"], "data": [[5, 0, -1]]}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = np.array(json.loads(response.read())["predictions"])
        # A request the model refuses: its own reason, not "an unexpected error while evaluating".
        body = json.dumps({"dataframe_split": {"columns": ["count", "seed"], "data": [[0, 0]]}}).encode()
        refused = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(refused, timeout=60)
        assert answer.value.code == 400 and "count=0 is not allowed: 1..100000" in answer.value.read().decode()
    assert predictions.shape == (5, 2)
    assert np.allclose(predictions, model.predict(pd.DataFrame({"count": [5], "seed": [0], "label": [-1]})), atol=1e-5)


def test_a_tampered_model_artifact_is_refused(tmp_path: Path):
    from pipelines.tracking.model import ModelArtifactError, load_generator_artifact

    pickled = tmp_path / "evil.pt"
    torch.save({"format": "ganpipe-generator/1", "payload": subprocess.Popen}, pickled)
    with pytest.raises(ModelArtifactError, match="not a safe generator weights file"):
        load_generator_artifact(pickled)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelArtifactError, match="garbage.pt"):
        load_generator_artifact(garbage)
