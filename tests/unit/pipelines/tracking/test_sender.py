"""Training workers' MLflow records: sent in the background, held through outages, never lost."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from mlflow.exceptions import MlflowException
from PIL import Image

from pipelines.tracking.sender import MetricsRecord, TrackingQueue
from pipelines.train.publish import resend_backlog
from pipelines.train.reporter import TRACKING_BACKLOG, RayReporter


class FlakyClient:
    """Stands in for MlflowClient: refuses connections while `down` is set, keeps what arrives."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.points: list[tuple[str, float, int, int]] = []  # key, value, step, timestamp
        self.images: dict[tuple[str, int], Image.Image] = {}
        self.refuse_key: str | None = None

    def log_batch(self, run_id, metrics=()):
        if self.down.is_set():
            raise ConnectionError("Connection refused")
        if any(m.key == self.refuse_key for m in metrics):
            raise MlflowException(f"INVALID_PARAMETER_VALUE: metric {self.refuse_key!r} is malformed")
        self.points += [(m.key, m.value, m.step, m.timestamp) for m in metrics]

    def log_artifact(self, run_id, local_path, artifact_path=None):
        if self.down.is_set():
            raise ConnectionError("Connection refused")
        with open(local_path, "rb") as handle:
            self.artifacts[f"{artifact_path}/{local_path.rsplit('/', 1)[-1]}"] = handle.read()

    def log_image(self, run_id, image, key=None, step=None, synchronous=None):
        if self.down.is_set():
            raise ConnectionError("Connection refused")
        self.images[(key, step)] = image

    def steps(self, key: str = "d_loss") -> list[int]:
        return [step for name, _, step, _ in self.points if name == key]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def queue_for(client: FlakyClient, lines: list[str] | None = None) -> TrackingQueue:
    return TrackingQueue(client, "run0", "http://tracking", log=(lines if lines is not None else []).append,
                         first_retry_s=0.01)  # fmt: skip


def test_records_arrive_in_order_with_the_time_they_were_made_and_without_nan():
    client = FlakyClient()
    queue = queue_for(client)
    before = int(time.time() * 1000)
    for step in (10, 20, 30):
        queue.log_metrics(step, {"d_loss": step / 10, "g_loss": float("nan")})
    assert queue.close(wait_s=10) == 0
    assert client.steps() == [10, 20, 30]
    assert client.steps("g_loss") == []  # a NaN is left out, not the whole batch
    assert all(before <= stamp <= int(time.time() * 1000) for *_, stamp in client.points)


def test_an_outage_holds_records_without_blocking_and_delivers_them_once_it_ends():
    client, lines = FlakyClient(), []
    queue = queue_for(client, lines)
    queue.log_metrics(1, {"d_loss": 1.0})
    wait_until(lambda: client.steps() == [1])

    client.down.set()
    for step in (2, 3, 4):
        queue.log_metrics(step, {"d_loss": float(step)})  # returns at once: the loop never waits
    image = Image.new("RGB", (4, 4), "red")
    queue.log_step_image(image, "training_samples", 4)
    wait_until(lambda: any("does not answer" in line for line in lines))
    assert [r["step"] for r in queue.backlog()] == [2, 3, 4]
    assert queue.pending() == 4

    client.down.clear()
    assert queue.close(wait_s=10) == 0
    assert client.steps() == [1, 2, 3, 4]  # in order, each once
    assert client.images["training_samples", 4].size == (4, 4)
    assert any("answers again" in line for line in lines)


def test_a_refused_record_is_reported_and_skipped_and_the_rest_still_arrive():
    client, lines = FlakyClient(), []
    client.refuse_key = "bad"
    queue = queue_for(client, lines)
    queue.log_metrics(1, {"bad": 1.0})
    queue.log_metrics(2, {"d_loss": 2.0})
    assert queue.close(wait_s=10) == 0
    assert client.steps() == [2]
    assert any("refused the metrics of step 1" in line and "malformed" in line for line in lines)


def test_close_gives_up_after_its_wait_and_says_how_many_did_not_arrive():
    client, lines = FlakyClient(), []
    client.down.set()
    queue = queue_for(client, lines)
    queue.log_metrics(1, {"d_loss": 1.0})
    queue.log_metrics(2, {"d_loss": 2.0})
    assert queue.close(wait_s=0.3) == 2
    assert any("2 tracking record(s) did not reach http://tracking" in line for line in lines)
    with pytest.raises(RuntimeError, match="closed"):
        queue.log_metrics(3, {"d_loss": 3.0})


def test_metrics_held_at_a_checkpoint_reach_mlflow_from_the_resumed_run_or_the_driver(tmp_path):
    """A worker dies while MLflow is down: the checkpoint carries what was held, and both the
    replacement worker and the driver send it again; a record sent twice is still one record."""
    down = FlakyClient()
    down.down.set()
    reporter = RayReporter(rank=0, world_size=1, run_id="run0", tracking_uri="http://tracking", check_sync=False)
    reporter._tracking = queue_for(down)
    reported: list[dict] = []
    reporter.report = lambda metrics, checkpoint: reported.append(checkpoint)
    reporter.on_metrics(100, {"d_loss": 0.5}, state=None)
    reporter.on_metrics(200, {"d_loss": 0.4}, state=None)
    reporter.on_checkpoint(200, {"step": 200, "extra": {}}, state=None)

    # The checkpoint file holds the backlog as plain data (weights_only loading).
    torch.save(reported[0], tmp_path / "state.pt")
    checkpoint = torch.load(tmp_path / "state.pt", weights_only=True)
    held = checkpoint["extra"][TRACKING_BACKLOG]
    assert [MetricsRecord.from_dict(r).step for r in held] == [100, 200]

    # The replacement worker resumes from it and sends the held metrics first.
    up = FlakyClient()
    replacement = RayReporter(rank=0, world_size=1, run_id="run0", tracking_uri="http://tracking", check_sync=False)
    replacement._tracking = queue_for(up)
    state = type("State", (), {"extra": dict(checkpoint["extra"])})()
    replacement.on_start(state)
    assert TRACKING_BACKLOG not in state.extra  # not carried on into the next checkpoints
    replacement.on_metrics(300, {"d_loss": 0.3}, state=None)
    replacement.on_end(state)
    assert up.steps() == [100, 200, 300]

    # The driver sends the final checkpoint's backlog: the same points, the same timestamps.
    resend_backlog(up, "run0", checkpoint, log=lambda line: None)
    assert len(set(up.points)) == 3


def test_the_wait_at_the_end_of_training_is_a_setting_in_seconds():
    from pipelines.settings import Settings

    assert Settings.from_env({}).tracking_wait_s == 600.0
    assert Settings.from_env({"GANPIPE_TRACKING_WAIT_S": "30"}).tracking_wait_s == 30.0
    with pytest.raises(ValueError, match="GANPIPE_TRACKING_WAIT_S='soon' is not allowed: a number of seconds >= 0"):
        Settings.from_env({"GANPIPE_TRACKING_WAIT_S": "soon"})


def test_flush_waits_for_delivery_but_not_for_a_server_known_to_be_down():
    client = FlakyClient()
    queue = queue_for(client)
    queue.log_metrics(1, {"d_loss": 1.0})
    assert queue.flush(wait_s=10) == 0 and client.steps() == [1]

    client.down.set()
    queue.log_metrics(2, {"d_loss": 2.0})
    started = time.monotonic()
    assert queue.flush(wait_s=30) == 1  # the first failed try says the server is down
    assert time.monotonic() - started < 5
    client.down.clear()
    assert queue.close(wait_s=10) == 0 and client.steps() == [1, 2]
