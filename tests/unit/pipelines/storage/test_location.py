"""The storage check before a command starts: waits for an S3 endpoint that does not answer,
never for a bucket that is missing or credentials that are refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.cli.main import main
from pipelines.runtime.waiting import ServiceUnavailable
from pipelines.storage.location import Storage, StorageError, StorageUnreachable
from tests.integration.services import free_port, mlflow_run_names


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@contextmanager
def fake_s3(statuses: list[int], opens: threading.Event | None = None) -> Iterator[str]:
    """An endpoint that answers HeadBucket with `statuses` in turn (the last one from then on),
    listening at once, or only once `opens` is set."""
    answers = list(statuses)

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            status = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # keep the test output quiet
            pass

    port = free_port()
    servers: list[ThreadingHTTPServer] = []

    def listen() -> None:
        servers.append(ThreadingHTTPServer(("127.0.0.1", port), Handler))

    def serve() -> None:
        if opens is not None:
            opens.wait(timeout=30)
            listen()
        servers[0].serve_forever(poll_interval=0.05)

    if opens is None:
        listen()  # here, so that the first request cannot come before the port is open
    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        deadline = time.monotonic() + 5
        while not servers and time.monotonic() < deadline:
            time.sleep(0.05)
        for server in servers:
            server.shutdown()
            server.server_close()


def test_a_closed_endpoint_fails_at_once_when_nothing_may_be_waited_for(monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    started = time.monotonic()
    with pytest.raises(StorageUnreachable) as raised:
        Storage.from_uri("s3://bucket-a/runs").check(wait_s=0)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert f"s3://bucket-a/runs: S3 endpoint {endpoint} does not answer (connection refused)" in message
    assert "GANPIPE_STORAGE_WAIT_S=0" in message
    assert raised.value.transient  # Prefect's task retries may try the step again


@pytest.mark.parametrize(
    ("statuses", "late", "reason"),
    [([200], True, "connection refused"), ([503, 503, 200], False, "S3 error 503")],
    ids=["starts-late", "busy"],
)
def test_an_endpoint_that_answers_later_is_waited_for_and_the_wait_is_reported(monkeypatch, statuses, late, reason):
    lines: list[str] = []
    opens = threading.Event() if late else None

    def log(line: str) -> None:
        lines.append(line)
        if opens is not None:
            opens.set()  # the endpoint starts once the check has found it closed

    with fake_s3(statuses, opens) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        Storage.from_uri("s3://bucket-a/runs").check(log, wait_s=60)
    assert len(lines) == 2, lines
    assert lines[0] == (
        f"s3://bucket-a/runs: S3 endpoint {endpoint} does not answer ({reason}); "
        "waiting up to 60 s for it (GANPIPE_STORAGE_WAIT_S)"
    )
    assert lines[1].startswith(f"s3://bucket-a/runs: S3 endpoint {endpoint} answers after")


@pytest.mark.parametrize(
    ("status", "problem"),
    [(404, "bucket 'bucket-a' does not exist at endpoint"), (403, "access denied by endpoint")],
)
def test_what_waiting_cannot_fix_is_not_waited_for(monkeypatch, status, problem):
    lines: list[str] = []
    with fake_s3([503, status]) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        started = time.monotonic()
        with pytest.raises(StorageError, match=problem) as raised:
            Storage.from_uri("s3://bucket-a/runs").check(lines.append, wait_s=600)
    assert time.monotonic() - started < 10  # one pause after the 503, then the verdict
    assert not raised.value.transient and not isinstance(raised.value, ServiceUnavailable)
    assert len(lines) == 1 and "does not answer (S3 error 503)" in lines[0]


COMMANDS = [
    ["train", "--preset", "ring", "--workers", "1", "--set", "train.steps=5"],
    ["tune", "--preset", "ring", "--space", "ring", "--name", "unstored", "--num-samples", "1"],
]


def _use_s3(monkeypatch, tmp_path, endpoint: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("GANPIPE_STORAGE", "s3://bucket-a/runs")
    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_commands_stop_with_one_line_and_open_no_mlflow_run_when_storage_does_not_answer(
    command, monkeypatch, tmp_path, capsys
):
    endpoint = f"http://127.0.0.1:{free_port()}"
    _use_s3(monkeypatch, tmp_path, endpoint)
    monkeypatch.setenv("GANPIPE_STORAGE_WAIT_S", "0")
    assert main(command) == 2
    err = capsys.readouterr().err
    expected = f"ganpipe {command[0]}: error: s3://bucket-a/runs: S3 endpoint {endpoint} does not answer"
    assert expected in err and "GANPIPE_STORAGE_WAIT_S=0" in err
    assert "Traceback" not in err
    assert mlflow_run_names(tmp_path) == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_commands_name_a_missing_bucket_in_one_line(command, monkeypatch, tmp_path, capsys):
    with fake_s3([404]) as endpoint:
        _use_s3(monkeypatch, tmp_path, endpoint)
        assert main(command) == 2
    err = capsys.readouterr().err
    assert f"ganpipe {command[0]}: storage error: s3://bucket-a/runs: bucket 'bucket-a' does not exist" in err
    assert "Traceback" not in err


def test_storage_that_stops_answering_during_a_command_ends_it_in_one_line(monkeypatch, capsys):
    """The retrying filesystem gave up (GANPIPE_STORAGE_WAIT_S) on a call the command made itself."""
    import pipelines.train.driver
    from pipelines.storage.retry import StorageUnavailable

    def gives_up(*args, **kwargs):
        raise StorageUnavailable("read checkpoints/x: storage did not answer for 600 s; gave up")

    monkeypatch.setattr(pipelines.train.driver, "train_distributed", gives_up)
    assert main(["train", "--preset", "ring", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "ganpipe train: error: read checkpoints/x: storage did not answer for 600 s; gave up\n"
