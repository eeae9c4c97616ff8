"""The services `bench/load.py` puts under load, each a subprocess on 127.0.0.1 on a free port,
stopped by PID (its process tree) when its `with` block ends: a throwaway PostgreSQL cluster, one
`mlflow server`, one local Ray cluster (`ray start --head`) and one `prefect server`.

A bench cannot import tests/, so this mirrors tests/integration/services.py where it can.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
# gunicorn's access log: status, microseconds, request line. The fields `load.py` parses.
ACCESS_FORMAT = '%(s)s %(D)s "%(r)s"'
GUNICORN_THREADS = 16  # one process, like uvicorn's --workers 1, serving requests from a thread pool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_tree(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM the process and every descendant it has now, then SIGKILL what is left. By PID:
    Ray's and the servers' children are found from the tree, never by name."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`command` in a session of its own, its output in `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )


def wait_until(ready: Callable[[], bool], what: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def service(command: list[str], what: str, ready: Callable[[], bool], log: Path, env=None, timeout=120.0):
    process = start(command, log, env)
    try:
        wait_until(ready, what, timeout, process, log)
        yield process
    finally:
        stop_tree(process)


# -- PostgreSQL ----------------------------------------------------------------------------------
def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user Debian's package made."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def postgres_bin(name: str) -> str:
    """A PostgreSQL program: on PATH, else in Debian's versioned folder."""
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        raise FileNotFoundError(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return str(found)


@contextlib.contextmanager
def postgres(databases: list[str]) -> Iterator[str]:
    """A throwaway cluster (initdb, trust auth on 127.0.0.1) holding `databases`; yields its
    URL without a database name, e.g. postgresql://postgres@127.0.0.1:PORT."""
    folder = Path(tempfile.mkdtemp(prefix="ganpipe-load-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    try:
        subprocess.run(
            _as_postgres([postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        options = f"-p {port} -h 127.0.0.1 -k {folder} -c max_connections=200"
        subprocess.run(
            _as_postgres([postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "pg.log"),
                          "-w", "start"]),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        try:
            for database in databases:
                subprocess.run(
                    [postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
            yield f"postgresql://postgres@127.0.0.1:{port}"
        finally:
            subprocess.run(
                _as_postgres([postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- MLflow --------------------------------------------------------------------------------------
@contextlib.contextmanager
def mlflow_server(store_uri: str, artifacts: Path, folder: Path, server: str) -> Iterator[tuple[str, Path]]:
    """`mlflow server` on `store_uri`, proxying artifacts into `artifacts`; yields (its URL, its
    access log). `server` is "gunicorn" (an access log with each request's duration) or
    "uvicorn" (MLflow's default: its access log has status codes but no durations)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    access = folder / "mlflow-access.log"
    command = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", store_uri, "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # else it starts job runners: 10 processes, 2 GB
    if server == "gunicorn":
        logging = f"--access-logfile {access} --access-logformat '{ACCESS_FORMAT}'"
        command += ["--gunicorn-opts", f"--threads {GUNICORN_THREADS} --timeout 300 {logging}"]
    else:
        access = folder / "mlflow.log"  # uvicorn's access lines go to the server's stdout
    with service(command, "mlflow server", lambda: answers(f"{url}/health"), folder / "mlflow.log", env, 180):
        yield url, access


# -- Ray -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def ray_head(cpus: float, folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node Ray cluster of `cpus` CPUs (`ray start --head --block`); yields its address and
    the environment its clients need. Every port Ray would otherwise take at a fixed default is a
    free one, so that another Ray on the machine is left alone; its session files go to a short
    temp folder of its own (Ray's socket paths must stay under 108 characters). It has a token of
    its own: Ray 2.60's `ray start` turns token auth on whenever ~/.ray/auth_token exists (another
    Ray's), and clients without the token are refused."""
    temp = Path(tempfile.mkdtemp(prefix="rayload-", dir="/tmp"))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    port = free_port()
    command = [
        str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
        "--num-cpus", f"{cpus:g}", "--temp-dir", str(temp), "--disable-usage-stats",
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(free_port()),
        "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()), "--metrics-export-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
    ]  # fmt: skip
    log = folder / "ray.log"
    # Its processes name it in RAY_ADDRESS: Ray Train's placement-group cleaner asks the state API
    # with no address, which fails with "Found multiple active Ray instances" beside another Ray.
    env = {**auth, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    try:
        with service(command, "ray start --head", lambda: "block forever" in log.read_text(), log, env, 180):
            yield f"127.0.0.1:{port}", auth
    finally:
        shutil.rmtree(temp, ignore_errors=True)


# -- Prefect -------------------------------------------------------------------------------------
@contextlib.contextmanager
def prefect_server(folder: Path, database_url: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` (its database: `database_url`, else SQLite in its home); yields its
    API URL and the environment a client needs to use it."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        "PREFECT_HOME": str(folder / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **({"PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url} if database_url else {}),
    }
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui",
               "--analytics-off"]  # fmt: skip
    with service(command, "prefect server", lambda: answers(f"{api}/health"), folder / "prefect.log", env, 180):
        yield api, {k: v for k, v in env.items() if k != "PREFECT_SERVER_DATABASE_CONNECTION_URL"}
