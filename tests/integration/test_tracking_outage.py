"""A tracking server that goes away during training: nothing waits for it, nothing is lost."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from pipelines.tracking.runs import step_images
from pipelines.tracking.sender import TrackingQueue
from pipelines.train.publish import resend_backlog
from tests.integration.services import free_port, mlflow_server

pytestmark = pytest.mark.integration


def test_metrics_made_while_mlflow_restarts_arrive_in_order_once(tmp_path: Path, monkeypatch):
    # Few and short retries inside the MLflow client: the queue's own retrying is under test.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    port, artifacts, lines = free_port(), tmp_path / "artifacts", []
    with mlflow_server(tmp_path, str(artifacts), None, port) as url:
        client = MlflowClient(url)
        run_id = client.create_run(client.create_experiment("outage")).info.run_id
        queue = TrackingQueue(client, run_id, url, log=lines.append)
        queue.log_metrics(1, {"d_loss": 1.0})
        deadline = time.monotonic() + 30
        while queue.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queue.pending() == 0

    # The server is down: the loop's calls return at once and the records wait.
    started = time.monotonic()
    for step in (2, 3):
        queue.log_metrics(step, {"d_loss": float(step)})
    queue.log_step_image(Image.new("RGB", (8, 8), "blue"), "training_samples", 3)
    assert time.monotonic() - started < 1.0
    time.sleep(3)
    assert [r["step"] for r in queue.backlog()] == [2, 3]
    assert any("does not answer" in line for line in lines)

    with mlflow_server(tmp_path, str(artifacts), None, port):  # the same store, back on the same port
        assert queue.close(wait_s=120) == 0
        history = client.get_metric_history(run_id, "d_loss")
        assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 2.0), (3, 3.0)]
        assert list(step_images(client, run_id, "training_samples")) == [3]
        # The driver re-sending what a checkpoint held (already delivered here) adds no points.
        resend_backlog(client, run_id, {"extra": {"tracking_backlog": [r.to_dict() for r in _records(history)]}})
        assert len(client.get_metric_history(run_id, "d_loss")) == 3


def _records(history):
    from pipelines.tracking.sender import MetricsRecord

    return [MetricsRecord(m.step, m.timestamp, {m.key: m.value}) for m in history]


def test_training_goes_on_while_mlflow_is_down_and_its_metrics_arrive_after(tmp_path: Path, ray_cluster):
    """`ganpipe train` on Ray: the MLflow server stops soon after training starts and comes back
    ten seconds later. Training never waits for it, and every metric reaches the run."""
    from gan_core.config import load_config, preset_path
    from pipelines.settings import Settings
    from pipelines.train.driver import train_distributed
    from pipelines.train.scaling import Scaling

    port, store, artifacts = free_port(), tmp_path / "mlflow", str(tmp_path / "artifacts")
    store.mkdir()
    settings = Settings(tmp_path, str(tmp_path / "storage"), f"http://127.0.0.1:{port}", "outage", None, None)
    overrides = ["data.n_train=5000", "train.steps=1500", "train.log_every=50", "train.checkpoint_every=500"]
    config = load_config(preset_path("ring"), overrides)
    servers, outage = ExitStack(), {}

    def stop_and_restart_the_server() -> None:
        client = MlflowClient(settings.tracking_uri)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not _logged_steps(client, settings.experiment):
            time.sleep(0.2)
        first.close()  # the server stops while training runs
        outage["down"] = time.time() * 1000
        time.sleep(10)
        outage["up"] = time.time() * 1000
        servers.enter_context(mlflow_server(store, artifacts, None, port))

    with servers:
        first = ExitStack()
        first.enter_context(mlflow_server(store, artifacts, None, port))
        watcher = threading.Thread(target=stop_and_restart_the_server, daemon=True)
        watcher.start()
        result = train_distributed(config, "outage", Scaling(workers=1), settings, log=lambda _: None)
        watcher.join(timeout=60)

        client = MlflowClient(settings.tracking_uri)
        history = client.get_metric_history(result.run_id, "d_loss")
        assert [m.step for m in history] == list(range(50, 1501, 50))  # all of them, once each
        made_while_down = [m.step for m in history if outage["down"] < m.timestamp < outage["up"]]
        assert made_while_down, "no metric was made while the server was down: did training wait?"
        assert client.get_run(result.run_id).info.status == "FINISHED"


def _logged_steps(client: MlflowClient, experiment: str) -> list[int]:
    try:
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id]) if found else []
        return [m.step for m in client.get_metric_history(runs[0].info.run_id, "d_loss")] if runs else []
    except Exception:  # noqa: BLE001 - not up yet
        return []
