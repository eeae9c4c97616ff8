"""Asking whether the MLflow tracking server is there before a command needs it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.cli.main import main
from pipelines.tracking.server import TrackingUnavailable, probe, wait_for_server
from tests.integration.services import free_port


@contextmanager
def _http_server(port: int, status: int = 200, asked: list[str] | None = None) -> Iterator[list[str]]:
    """A server that answers every GET with `status`; yields (and fills) the paths it was asked for."""
    asked = [] if asked is None else asked

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked.append(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args) -> None:  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield asked
    finally:
        server.shutdown()
        server.server_close()


def test_local_stores_have_nobody_to_wait_for():
    lines: list[str] = []
    wait_for_server("sqlite:///nowhere/mlflow.db", 0, lines.append)
    wait_for_server("file:///nowhere/mlruns", 0, lines.append)
    assert lines == []


def test_a_closed_port_fails_at_once_naming_the_server_the_cause_and_the_setting():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as raised:
        wait_for_server(url, 0, print)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert url in message and "connection refused" in message and "GANPIPE_TRACKING_WAIT_S=0" in message
    assert raised.value.transient  # Prefect's task retries may try the step again


def test_a_server_that_starts_late_is_waited_for_and_the_wait_is_reported():
    port, lines = free_port(), []
    url = f"http://127.0.0.1:{port}/"
    with _serve_after(port, 1.5) as asked:
        wait_for_server(url, 60, lines.append, first_retry_s=0.2)
    assert asked and asked[-1] == "/health"
    assert len(lines) == 2, lines
    assert "does not answer (connection refused); waiting up to 60 s" in lines[0]
    assert lines[1].startswith(f"the MLflow tracking server {url} answers after")


@contextmanager
def _serve_after(port: int, delay_s: float) -> Iterator[list[str]]:
    """The paths asked of a server on `port` that starts `delay_s` seconds from now."""
    asked: list[str] = []
    stop = threading.Event()

    def run() -> None:
        if not stop.wait(delay_s):
            with _http_server(port, asked=asked):
                stop.wait()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield asked
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_server_that_never_answers_is_down_after_the_probe_timeout():
    with socket.socket() as silent:  # accepts connections (the OS does), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert probe(url, timeout_s=0.5) == "no answer within 0.5 s"
        with pytest.raises(TrackingUnavailable, match="no answer within 0.5 s"):
            wait_for_server(url, 0, print, probe_timeout_s=0.5)


@pytest.mark.parametrize(("status", "down"), [(503, True), (502, True), (401, False), (404, False), (200, False)])
def test_a_proxy_saying_the_server_is_down_counts_as_down_anything_else_as_up(status: int, down: bool):
    port = free_port()
    with _http_server(port, status):
        problem = probe(f"http://127.0.0.1:{port}")
    assert (problem == f"HTTP {status} from the proxy in front of it") if down else problem is None


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--preset", "ring", "--workers", "1", "--set", "train.steps=5"],
        ["promote", "ring-generator"],
        ["rollback", "ring-generator"],
        ["evaluate", "models:/ring-generator@champion"],
    ],
)
def test_commands_stop_with_one_line_when_the_server_is_down(command, monkeypatch, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("GANPIPE_TRACKING_WAIT_S", "0")
    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path))
    monkeypatch.delenv("GANPIPE_STORAGE", raising=False)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"ganpipe {command[0]}: error: the MLflow tracking server {url} does not answer" in err
    assert "Traceback" not in err


def test_credentials_in_the_uri_never_reach_the_log():
    port = free_port()
    with pytest.raises(TrackingUnavailable) as raised:
        wait_for_server(f"http://alice:s3cret@127.0.0.1:{port}", 0, print)
    assert "s3cret" not in str(raised.value) and f"http://***@127.0.0.1:{port}" in str(raised.value)
