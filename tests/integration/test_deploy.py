"""`ganpipe deploy` against a real `prefect server`; a process worker runs the nightly deployment."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.services import BIN, prefect_server, stop

pytestmark = pytest.mark.integration

POOL = "ganpipe-it-pool"
NIGHTLY_PARAMS = {"name": "nightly", "preset": "ring", "source": "ring", "n_train": 5000, "train_steps": 300,
                  "bootstrap": 20}  # fmt: skip


def test_deployments_are_scheduled_and_a_worker_completes_a_run(settings, ray_cluster, tmp_path: Path):
    import json

    import ray

    env = {
        **os.environ,
        "GANPIPE_HOME": str(settings.home),
        "GANPIPE_STORAGE": settings.storage_uri,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "GANPIPE_EXPERIMENT": settings.experiment,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    with prefect_server(tmp_path, env) as api:
        env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=api)
        params = [arg for k, v in NIGHTLY_PARAMS.items() for arg in ("--param", f"{k}={json.dumps(v)}")]
        deployed = subprocess.run([str(BIN / "ganpipe"), "deploy", "--pool", POOL, *params],
                                  env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        assert "gan-pipeline/nightly-train" in deployed.stdout and "gan-pipeline/weekly-search" in deployed.stdout

        schedules = _deployment_schedules(api)
        assert schedules == {"nightly-train": (["0 2 * * *"], 1), "weekly-search": (["0 3 * * 6"], 1)}

        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            state = _run_and_wait(api, "gan-pipeline/nightly-train", timeout=420)
            assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
            _cancelled_while_training(api, tmp_path / "worker.log", settings)
        finally:
            stop(worker)  # the worker goes before the server, or it hangs on shutdown

    versions = MlflowClient(settings.tracking_uri).search_model_versions("name='nightly-generator'")
    assert [v.version for v in versions] == ["1"]


def _cancelled_while_training(api: str, worker_log: Path, settings) -> None:
    """Cancelling a run from Prefect (the UI's Cancel) SIGTERMs its process group: training stops
    with a checkpoint of the step it reached, its MLflow run is KILLED and the flow run Cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Cancelling

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        overrides = {"name": "cancelled", "train_steps": 100_000}
        run = run_deployment("gan-pipeline/nightly-train", parameters=overrides, timeout=0)
        _wait_for(lambda: "step 200/100000" in worker_log.read_text(), 240, worker_log)
        client.set_flow_run_state(run.id, Cancelling(message="cancelled by the test"))
        final = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
        _wait_for(lambda: client.read_flow_run(run.id).state.type.value in final, 120, worker_log)
        assert client.read_flow_run(run.id).state.type.value == "CANCELLED", worker_log.read_text()[-4000:]

    # The step of the last checkpoint the workers reported (0 with none); the periodic ones come every 1000.
    stopped = re.search(r"TrainingStopped: stopped at step (\d+) \(SIGTERM\)", worker_log.read_text())
    assert stopped and int(stopped.group(1)) > 200, worker_log.read_text()[-4000:]
    # The stop is logged in lines, not as the last line of three tracebacks (about 250 lines).
    assert "gan_core.training.stopping.TrainingStopped:" not in worker_log.read_text()
    tracking = MlflowClient(settings.tracking_uri)
    [trained] = tracking.search_runs(
        [tracking.get_experiment_by_name(settings.experiment).experiment_id], "tags.mlflow.runName LIKE 'cancelled-%'"
    )  # fmt: skip
    assert trained.info.status == "KILLED"


def _wait_for(condition, timeout: float, worker_log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, worker_log.read_text()[-4000:]
        time.sleep(2)


def _deployment_schedules(api: str) -> dict[str, tuple[list[str], int | None]]:
    """{deployment: (its crons, how many of its runs may run at once)}"""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        deployments = client.read_deployments()
    limits = {d.name: d.global_concurrency_limit.limit if d.global_concurrency_limit else None for d in deployments}
    return {d.name: ([s.schedule.cron for s in d.schedules], limits[d.name]) for d in deployments}


def _run_and_wait(api: str, deployment: str, timeout: float) -> str:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}):
        run = run_deployment(deployment, timeout=timeout, poll_interval=3)
    return run.state.type.value if run.state else "UNKNOWN"
