"""`ganpipe pipeline` in a terminal: Ctrl-C stops the flow, not the Prefect server it reports to."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

CTRL_C_THE_SERVER = """
import os, signal, time
import httpx
from prefect.server.api.server import SubprocessASGIServer
from pipelines.flows.server import start_ephemeral_server_deaf_to_ctrl_c

start_ephemeral_server_deaf_to_ctrl_c()
server = SubprocessASGIServer()  # the instance Prefect's clients find
os.kill(server.server_process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends it
time.sleep(3)  # without the block it stops answering at once and exits within 2 s
try:
    answer = httpx.get(server.api_url + "/health").status_code
except httpx.HTTPError as error:
    answer = type(error).__name__
print(server.server_process.poll(), answer)
server.stop()
"""


def test_the_ephemeral_prefect_server_outlives_a_ctrl_c(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_THE_SERVER], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "200"]  # still running, still answering
