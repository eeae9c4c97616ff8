"""Asking whether the Ray cluster at RAY_ADDRESS is there before a command connects to it."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pipelines.cli.main import main
from pipelines.cluster.connect import RayUnavailable, host_and_port, wait_for_cluster
from pipelines.settings import Settings
from tests.integration.services import free_port, mlflow_run_names


@pytest.mark.parametrize(
    ("address", "place"),
    [
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("head", ("head", 6379)),
        ("ray://head:10001", ("head", 10001)),
        ("ray://head", ("head", 10001)),
        ("ray://head.ns.svc.cluster.local:20001/", ("head.ns.svc.cluster.local", 20001)),
        ("[::1]:6379", ("::1", 6379)),
        ("auto", None),
        ("local", None),
    ],
)
def test_the_place_to_ask_is_read_from_every_form_of_ray_address(address, place):
    assert host_and_port(address) == place


def test_a_ray_address_with_a_port_that_is_not_a_number_is_refused():
    with pytest.raises(ValueError, match=r"RAY_ADDRESS='head:gcs' is not allowed: host:port, ray://host:port"):
        host_and_port("head:gcs")


def test_a_closed_port_fails_at_once_when_nothing_may_be_waited_for():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(RayUnavailable) as raised:
        wait_for_cluster(address, 0, print)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert f"the Ray cluster at {address} does not answer (connection refused)" in message
    assert "GANPIPE_RAY_WAIT_S=0" in message and "unset RAY_ADDRESS" in message
    assert raised.value.transient  # Prefect's task retries may try the step again


def test_a_cluster_that_starts_late_is_waited_for_and_the_wait_is_reported():
    port, lines = free_port(), []
    ready = threading.Event()

    def head_starting_late() -> None:
        time.sleep(1.5)
        with socket.create_server(("127.0.0.1", port)) as head:
            ready.set()
            head.settimeout(10)
            head.accept()[0].close()

    thread = threading.Thread(target=head_starting_late, daemon=True)
    thread.start()
    wait_for_cluster(f"127.0.0.1:{port}", 60, lines.append, first_retry_s=0.2)
    thread.join(timeout=10)
    assert ready.is_set()
    assert len(lines) == 2, lines
    assert f"the Ray cluster at 127.0.0.1:{port} does not answer (connection refused); waiting up to 60 s" in lines[0]
    assert lines[1].startswith(f"the Ray cluster at 127.0.0.1:{port} answers after")


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--preset", "ring", "--workers", "1", "--set", "train.steps=5"],
        ["tune", "--preset", "ring", "--space", "ring", "--name", "unreached", "--num-samples", "1"],
    ],
)
def test_commands_stop_with_one_line_and_open_no_mlflow_run_when_the_cluster_is_down(
    command, monkeypatch, tmp_path, capsys
):
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setenv("GANPIPE_RAY_WAIT_S", "0")
    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path))
    for name in ("GANPIPE_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"ganpipe {command[0]}: error: the Ray cluster at {address} does not answer (connection refused)" in err
    assert "Traceback" not in err
    assert mlflow_run_names(tmp_path) == []  # the check comes before any MLflow run is opened


def test_the_wait_for_the_cluster_is_a_setting_in_seconds():
    assert Settings.from_env({}).ray_wait_s == 600.0
    assert Settings.from_env({"GANPIPE_RAY_WAIT_S": "45"}).ray_wait_s == 45.0
    with pytest.raises(ValueError, match="GANPIPE_RAY_WAIT_S='later' is not allowed"):
        Settings.from_env({"GANPIPE_RAY_WAIT_S": "later"})


def test_a_port_that_answers_but_that_ray_cannot_join_ends_in_one_line(monkeypatch, tmp_path, capsys):
    """Something listens at RAY_ADDRESS (a wrong port, a head refusing this command's token), and
    ray.init gives up with a bare ConnectionError: the command says what to check instead."""
    import ray

    def refused(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6379")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv("RAY_ADDRESS", address)
        monkeypatch.setenv("GANPIPE_HOME", str(tmp_path))
        for name in ("GANPIPE_STORAGE", "MLFLOW_TRACKING_URI"):
            monkeypatch.delenv(name, raising=False)
        assert main(["train", "--preset", "ring", "--workers", "1", "--set", "train.steps=5"]) == 2
    err = capsys.readouterr().err
    assert f"ganpipe train: error: the Ray cluster at {address} accepts connections, but Ray could not join it" in err
    assert "RAY_AUTH_TOKEN" in err and "Traceback" not in err
    assert mlflow_run_names(tmp_path) == []
