"""Real services for integration tests, started as subprocesses on 127.0.0.1 and stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: service exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def service(command: list[str], health_url: str, log: Path, env: dict[str, str] | None = None, timeout: float = 60):
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    try:
        wait_for_http(health_url, timeout, process, log)
        yield process
    finally:
        stop(process)


@contextmanager
def moto_s3(folder: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with service(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], f"{url}/moto-api/", folder / "moto.log"
    ):
        yield url


@contextmanager
def mlflow_server(
    folder: Path, artifacts: str, s3_endpoint: str | None, port: int | None = None, admin_password: str | None = None
):
    """An MLflow server whose store is `folder`'s SQLite file: a second one started on the same
    folder and port is the first one restarted. With `admin_password`, MLflow's basic-auth app
    asks every request who it is (users in `folder`'s basic_auth.db, the admin is `admin`)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", artifacts,
    ]  # fmt: skip
    env = {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **({"MLFLOW_S3_ENDPOINT_URL": s3_endpoint} if s3_endpoint else {}),
    }
    if admin_password is not None:
        command += ["--app-name", "basic-auth"]
        env.update(basic_auth_env(folder, admin_password))
    with service(command, f"{url}/health", folder / "mlflow.log", env, timeout=90):
        yield url


def basic_auth_env(folder: Path, admin_password: str) -> dict[str, str]:
    """What `mlflow server --app-name basic-auth` reads, as infra/ gives it: the config file (no
    secret in it), the admin's password and the CSRF key from the environment."""
    config = folder / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}\nadmin_username = admin\n"
        "auth_cache_ttl_seconds = 60\n"  # as infra/docker-entrypoint.sh: a password's hash checked once a minute
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": f"csrf-{folder.name}",
    }


@contextmanager
def prefect_server(folder: Path, env: dict[str, str], auth_string: str | None = None):
    """`prefect server start` with its own PREFECT_HOME in `folder`; with `auth_string`
    (user:password), it refuses requests without that PREFECT_API_AUTH_STRING. Yields its API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_env = {**env, "PREFECT_HOME": str(folder / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if auth_string is not None:
        server_env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui",
               "--analytics-off"]  # fmt: skip
    with service(command, f"{api}/health", folder / "prefect-server.log", server_env, timeout=120):
        yield api


def mlflow_run_names(home: Path) -> list[str]:
    """The names of the MLflow runs in the embedded store of GANPIPE_HOME `home`."""
    if not (home / "mlflow.db").exists():
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [run.info.run_name for run in client.search_runs(experiments)]


class TcpProxy:
    """A TCP forwarder on a local port that can be cut and restored. While cut, it resets every
    connection, open or new, as a server that went away would (and counts the new ones in
    `turned_away`); the server behind it keeps its state, which moto's S3 loses on a restart."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.turned_away = 0
        self._cut = False
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            connections, self._connections = self._connections, []
        for connection in connections:
            _reset(connection)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        with suppress(OSError):  # shutdown first: a bare close() leaves the blocked accept() listening
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._cut:
                    self.turned_away += 1
                    _reset(client)
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        _reset(source)
        _reset(target)


def _reset(connection: socket.socket) -> None:
    """Close with a TCP reset (linger 0), as a vanished server's host answers."""
    with suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()
