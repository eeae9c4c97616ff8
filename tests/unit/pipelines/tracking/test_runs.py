"""The pipeline's MLflow experiment is tagged as model training, so that the UI opens on its runs."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from pipelines.settings import Settings
from pipelines.tracking.runs import EXPERIMENT_KIND_TAG, MODEL_TRAINING, experiment_id


def test_a_new_and_an_untagged_experiment_are_tagged_as_model_training(tmp_path: Path):
    settings = Settings.from_env({"GANPIPE_HOME": str(tmp_path)})
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    made = experiment_id(client, settings)
    assert client.get_experiment(made).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING

    older = client.create_experiment("made-before-the-tag")
    again = Settings.from_env({"GANPIPE_HOME": str(tmp_path), "GANPIPE_EXPERIMENT": "made-before-the-tag"})
    assert experiment_id(client, again) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
