"""Prefect flows against real services: moto's S3 server, an MLflow server, local Ray, a Prefect test server."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import boto3
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gan_core.data.idx import write_idx
from tests.integration.conftest import BUCKET, bucket_keys
from tests.integration.services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls from a machine offline
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture()
def pipeline_env(settings, ray_cluster, prefect_api, monkeypatch):
    """The documented cluster configuration: storage in S3, MLflow behind a server."""
    monkeypatch.setenv("GANPIPE_HOME", str(settings.home))
    monkeypatch.setenv("GANPIPE_STORAGE", settings.storage_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("GANPIPE_EXPERIMENT", settings.experiment)
    return settings


def _task_runs(flow_state) -> dict[str, int]:
    """Task name -> how many times it ran, for the flow run behind `flow_state`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=flow_filter)
    return {run.name.rsplit("-", 1)[0]: run.run_count for run in runs}


def test_prepare_stores_a_version_once_and_versions_new_input(pipeline_env):
    from pipelines.flows.prepare import prepare

    first = prepare("digits")
    prefix = f"runs-{pipeline_env.home.name}/datasets/digits/{first.version}/"
    stored = bucket_keys(prefix)
    assert not first.reused and f"{prefix}manifest.json" in stored and any(k.endswith(".npz") for k in stored)
    assert first.manifest["statistics"]["train"]["count"] == 1438

    again = prepare("digits")
    assert again.reused and again.version == first.version and bucket_keys(prefix) == stored

    other = prepare("ring", n_train=1000, seed=1)
    assert other.version != prepare("ring", n_train=1000, seed=2).version


def test_bad_input_stops_the_flow_without_retries_or_writes(pipeline_env, tmp_path: Path):
    from pipelines.flows.prepare import prepare

    folder = tmp_path / "mnist"
    folder.mkdir()
    images = np.zeros((120, 28, 28), dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", np.full(120, 12, dtype=np.uint8))  # not a digit
    write_idx(folder / "t10k-images-idx3-ubyte", images[:20])
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(20, dtype=np.uint8))

    state = prepare("mnist", str(folder), return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: labels must lie in 0\.\.9"):
        state.result()
    assert _task_runs(state) == {"read-source": 1}  # bad data: no retry, and the store step never ran
    assert bucket_keys(f"runs-{pipeline_env.home.name}/datasets/") == []


def test_idx_files_in_s3_that_cannot_be_read_are_named_by_their_uri(s3, tmp_path: Path):
    """Errors named the scratch folder the files were copied to (gone by then), and a missing
    bucket was "no files there"."""
    from pipelines.storage.datasets import read_source
    from pipelines.storage.location import StorageError

    images = np.zeros((120, 28, 28), dtype=np.uint8)
    files = {"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": np.full(120, 12, dtype=np.uint8),
             "t10k-images-idx3-ubyte": images[:20], "t10k-labels-idx1-ubyte": np.zeros(20, dtype=np.uint8)}  # fmt: skip
    for name, array in files.items():
        write_idx(tmp_path / name, array)
        boto3.client("s3").upload_file(str(tmp_path / name), BUCKET, f"idx-bad/nested/{name}")

    root = f"s3://{BUCKET}/idx-bad"
    with pytest.raises(FileNotFoundError, match=rf"{root}: no files there \(only folders \['nested/'\]"):
        read_source("mnist", root, 1000, 0, tmp_path / "scratch")
    with pytest.raises(ValueError, match=rf"^{root}/nested/train-labels-idx1-ubyte: labels must lie in 0\.\.9"):
        read_source("mnist", f"{root}/nested", 1000, 0, tmp_path / "scratch")
    with pytest.raises(StorageError, match="s3://no-such-bucket/mnist"):
        read_source("mnist", "s3://no-such-bucket/mnist", 1000, 0, tmp_path / "scratch")


@pytest.mark.parametrize(
    ("wait_s", "attempts"),
    [("60", 1), ("0", 2)],  # the check waits for storage; with no wait, Prefect's task retry steps in
    ids=["check-waits", "task-retries"],
)
def test_a_storage_outage_is_retried_until_it_answers(pipeline_env, monkeypatch, wait_s, attempts):
    from moto.server import ThreadedMotoServer

    from pipelines.flows.prepare import prepare

    port = free_port()
    monkeypatch.setenv("GANPIPE_STORAGE_WAIT_S", wait_s)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GANPIPE_STORAGE", "s3://late-bucket/data")
    _create_bucket_while_the_endpoint_is_down("late-bucket")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    timer = threading.Timer(1.0, server.start)  # answers only after the first attempt has failed
    timer.start()
    try:
        state = prepare("ring", n_train=1000, return_state=True)
        assert state.is_completed(), state.message
        assert _task_runs(state)["store-version"] == attempts
        assert state.result().uri.startswith("s3://late-bucket/data/datasets/ring/")
    finally:
        timer.join()
        server.stop()


def _create_bucket_while_the_endpoint_is_down(bucket: str) -> None:
    """Create the bucket through a short-lived in-process server: moto keeps its buckets in this
    process, so the outage's server has it the moment it answers (creating it after the server
    started left a window in which the check found no bucket, which it rightly does not wait out)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    setup = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    setup.start()
    try:
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket=bucket)
    finally:
        setup.stop()


def test_gan_pipeline_runs_end_to_end_and_a_rerun_reuses_it(pipeline_env):
    from pipelines.flows.pipeline import gan_pipeline

    params = dict(name="e2e", preset="digits-cgan", search_space="digits", search_samples=2, search_steps=200,
                  train_steps=400, bootstrap=20)  # fmt: skip
    summary = gan_pipeline(**params)
    client = MlflowClient(pipeline_env.tracking_uri)
    assert summary["version"] == "1" and summary["search"]["trials"] == 2
    assert summary["metrics"]["frechet_distance"]["value"] > 0 and "ci_low" in summary["metrics"]["frechet_distance"]
    if summary["decision"]["promoted"]:
        assert client.get_model_version_by_alias("e2e-generator", "champion").version == "1"
    else:
        assert summary["decision"]["reason"].startswith("failed gates")
    # The registered version's card: its name and the evaluation's 95% intervals (training's had neither).
    card = Path(client.download_artifacts(summary["run_id"], "model_card.md")).read_text()
    fd = summary["metrics"]["frechet_distance"]
    assert card.startswith("# e2e-generator: generator from run") and f"[{fd['ci_low']:.4g}, " in card, card
    report = Path(summary["outputs"]["report"]).read_text()
    assert "## Evaluation" in report and "## Promotion" in report and "## Search" in report
    assert Path(summary["outputs"]["final"]).is_file() and Path(summary["outputs"]["training"]).is_file()
    stages = bucket_keys(f"runs-{pipeline_env.home.name}/pipelines/e2e/")
    assert {Path(k).name.split("-")[0] for k in stages} >= {"search", "train", "evaluate", "register"}
    _opens_on_training(client, pipeline_env.experiment, summary["run_id"], card)
    experiment_id = client.get_run(summary["run_id"]).info.experiment_id  # the page it prints, in training view
    assert summary["outputs"]["mlflow run"].endswith(
        f"/#/experiments/{experiment_id}/runs/{summary['run_id']}?workflowType=machine_learning"
    )
    page = client.get_model_version("e2e-generator", "1").description  # the card, rendered on the model's page
    picture = f"(get-artifact?path=samples%2Ffinal.png&run_uuid={summary['run_id']})"
    assert page.startswith("# e2e-generator") and picture in page

    runs_before = len(client.search_runs([client.get_experiment_by_name(pipeline_env.experiment).experiment_id]))
    again = gan_pipeline(**params)
    assert again["run_id"] == summary["run_id"] and again["version"] == "1" and again["dataset"]["reused"]
    runs_after = len(client.search_runs([client.get_experiment_by_name(pipeline_env.experiment).experiment_id]))
    assert runs_after == runs_before  # nothing trained, evaluated or decided twice
    assert len(client.search_model_versions("name='e2e-generator'")) == 1


def _opens_on_training(client: MlflowClient, experiment_name: str, run_id: str, card: str) -> None:
    """What MLflow's UI shows of the pipeline: an experiment of model training (not GenAI's traces),
    a run with training curves and no one-point reference charts, a card whose picture is there."""
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    run = client.get_run(run_id)
    assert len(client.get_metric_history(run_id, "d_loss")) > 1
    evaluated = {key.split("/")[-1] for key in run.data.metrics if key.startswith("eval/")}
    reference = {f"{name}_{kind}" for name in evaluated for kind in ("real", "matched")}  # not d_real: D(x)
    assert evaluated and not [key for key in run.data.metrics if key.split("/")[-1] in reference]
    pictures = {a.path for a in client.list_artifacts(run_id, "samples")}
    assert {"samples/curves.png", "samples/training.gif"} <= pictures
    shown = re.findall(r"!\[[^]]*\]\(([^)]+)\)", card)
    assert shown and set(shown) <= pictures, (shown, pictures)


def test_training_workers_the_cluster_cannot_hold_are_refused_before_the_search(pipeline_env):
    """The train step refused them, but only once the search before it had run its trials."""
    from pipelines.flows.pipeline import gan_pipeline

    state = gan_pipeline(name="too-wide", preset="digits-cgan", search_space="digits", search_samples=2,
                         workers=2, cpus_per_worker=3.0, return_state=True)  # fmt: skip
    assert state.is_failed()
    with pytest.raises(ValueError, match=r"cannot hold 2 worker\(s\) of \{CPU: 3\} each"):
        state.result()
    runs = _task_runs(state)
    assert runs["check-cluster"] == 1 and "search" not in runs and "train" not in runs
    assert not bucket_keys(f"runs-{pipeline_env.home.name}/pipelines/too-wide/")  # no stage recorded


def test_bucket_used_by_the_flows_is_the_test_bucket():
    assert BUCKET == "ganpipe-it"  # the stage and dataset paths above assume it
