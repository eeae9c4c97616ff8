"""The driver's stop request reaches rank 0 through a marker in the run's storage folder."""

import time
from pathlib import Path

from gan_core.training import StopRequest, TrainingStopped
from pipelines.runtime.faults import is_transient
from pipelines.storage.location import Storage
from pipelines.train import stop_relay


def test_a_request_at_the_driver_reaches_the_watching_worker_and_the_marker_is_removed(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(stop_relay, "LOOK_EVERY_S", 0.05)
    folder = Storage.from_uri(str(tmp_path))
    at_driver, at_worker = StopRequest(), StopRequest()
    with stop_relay.relayed_to_workers(at_driver, folder, "stop-1.txt"):
        with stop_relay.watching_for_stop(at_worker, folder, "stop-1.txt"):
            time.sleep(0.2)
            assert not at_worker.requested  # nothing asked, nothing written
            at_driver.request("SIGTERM", 15)
            assert at_worker.wait(timeout=10)
        assert at_worker.reason == "SIGTERM at the driver"
        assert folder.exists("stop-1.txt")
    assert not folder.exists("stop-1.txt")


def test_a_marker_of_another_attempt_is_not_taken_for_this_one(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(stop_relay, "LOOK_EVERY_S", 0.05)
    folder = Storage.from_uri(str(tmp_path))
    folder.write_bytes("stop-old.txt", b"SIGINT")  # left by a driver that was killed
    stop = StopRequest()
    with stop_relay.watching_for_stop(stop, folder, "stop-new.txt"):
        assert not stop.wait(timeout=0.3)


def test_a_stopped_run_is_not_retried_by_the_flow():
    assert not is_transient(TrainingStopped(120, "SIGTERM", 15))
