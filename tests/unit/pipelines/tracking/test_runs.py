"""The pipeline's MLflow experiment is tagged as model training, so that the UI opens on its runs."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from pipelines.settings import Settings
from pipelines.tracking.runs import EXPERIMENT_KIND_TAG, MODEL_TRAINING, experiment_id, run_page


def test_a_new_and_an_untagged_experiment_are_tagged_as_model_training(tmp_path: Path):
    settings = Settings.from_env({"GANPIPE_HOME": str(tmp_path)})
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    made = experiment_id(client, settings)
    assert client.get_experiment(made).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING

    older = client.create_experiment("made-before-the-tag")
    again = Settings.from_env({"GANPIPE_HOME": str(tmp_path), "GANPIPE_EXPERIMENT": "made-before-the-tag"})
    assert experiment_id(client, again) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


def test_an_evaluation_logs_the_generator_s_values_as_metrics_and_real_data_s_as_one_table(tmp_path: Path):
    from pipelines.tracking.runs import log_report

    settings = Settings.from_env({"GANPIPE_HOME": str(tmp_path)})
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run_id = client.create_run(experiment_id(client, settings)).info.run_id
    report = {
        "frechet_distance": {"value": 0.4, "ci_low": 0.35, "ci_high": 0.46, "real": 0.7, "matched": 0.2},
        "modes": {"value": 10.0, "real": 10.0},
    }
    log_report(client, run_id, report, step=7, prefix="eval/")
    metrics = client.get_run(run_id).data.metrics
    assert metrics == {
        "eval/frechet_distance": 0.4,
        "eval/frechet_distance_ci_low": 0.35,
        "eval/frechet_distance_ci_high": 0.46,
        "eval/modes": 10.0,
    }
    assert client.get_metric_history(run_id, "eval/modes")[0].step == 7
    table = mlflow.artifacts.load_dict(f"{client.get_run(run_id).info.artifact_uri}/eval/real_data_reference.json")
    assert table == {"frechet_distance": {"real": 0.7, "matched": 0.2}, "modes": {"real": 10.0}}


def test_the_training_data_is_the_run_s_dataset_input(tmp_path: Path):
    from gan_core.data import load_dataset
    from pipelines.tracking.runs import log_dataset_input

    settings = Settings.from_env({"GANPIPE_HOME": str(tmp_path)})
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run_id = client.create_run(experiment_id(client, settings)).info.run_id
    dataset = load_dataset("ring", "", 1000, 0)
    log_dataset_input(client, run_id, dataset, "0123abcd", "")
    [used] = client.get_run(run_id).inputs.dataset_inputs
    assert (used.dataset.name, used.dataset.digest, used.dataset.source_type) == ("ring", "0123abcd", "code")
    assert json.loads(used.dataset.profile) == {"train": 1000, "test": len(dataset.test_x), "shape": [2]}
    assert [(t.key, t.value) for t in used.tags] == [("mlflow.data.context", "training")]


def test_the_run_page_opens_in_the_ui_s_training_view_without_credentials():
    # MLflow 3.17's UI opens in GenAI mode unless the URL asks for the training view.
    assert run_page("sqlite:///runs/mlflow.db", "1", "abc") == (
        "http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning"
    )
    page = run_page("https://alice:secret@mlflow.example.org/", "7", "def")
    assert page == "https://mlflow.example.org/#/experiments/7/runs/def?workflowType=machine_learning"


def test_an_experiment_another_command_made_since_the_lookup_is_used(tmp_path: Path, monkeypatch):
    """Trainings started at once each find no experiment; the one that loses the create uses it."""
    settings = Settings.from_env({"GANPIPE_HOME": str(tmp_path)})
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    theirs = experiment_id(client, settings)
    monkeypatch.setattr(client, "get_experiment_by_name", _once(lambda name: None, client.get_experiment_by_name))
    assert experiment_id(client, settings) == theirs


def test_a_dataset_another_run_logs_at_the_same_moment_is_logged_once_more(tmp_path: Path, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    from gan_core.data import load_dataset
    from pipelines.tracking.runs import log_dataset_input

    settings = Settings.from_env({"GANPIPE_HOME": str(tmp_path)})
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run_id = client.create_run(experiment_id(client, settings)).info.run_id

    def collides(*args, **kwargs):  # what MLflow's SQL store answers when another run inserted the row first
        raise MlflowException("UNIQUE constraint failed: datasets.experiment_id", error_code=BAD_REQUEST)

    monkeypatch.setattr(client, "log_inputs", _once(collides, client.log_inputs))
    log_dataset_input(client, run_id, load_dataset("ring", "", 1000, 0), "0123abcd", "")
    assert [used.dataset.name for used in client.get_run(run_id).inputs.dataset_inputs] == ["ring"]


def _once(first, then):
    """A function that behaves as `first` at its first call and as `then` after."""
    calls = []

    def call(*args, **kwargs):
        calls.append(1)
        return (first if len(calls) == 1 else then)(*args, **kwargs)

    return call
