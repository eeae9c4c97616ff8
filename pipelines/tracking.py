"""MLflow tracking for training runs: one MLflow run per training, found again on resume.

Ray Train V2 refuses Ray's own MLflow callback, so the driver opens the run and rank 0
logs into it by run id. Params are the flattened config; secrets never reach MLflow.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from gan_core import __version__ as gan_core_version
from pipelines.settings import Settings

RUN_NAME_TAG = "ganpipe.run_name"


def client_for(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri)


def experiment_id(client: MlflowClient, settings: Settings) -> str:
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if settings.tracking_uri.startswith("sqlite:"):  # embedded default: artifacts in a local folder
        settings.local_artifacts.mkdir(parents=True, exist_ok=True)
        location = settings.local_artifacts.as_uri()
    return client.create_experiment(settings.experiment, artifact_location=location)


def find_or_create_run(
    client: MlflowClient, settings: Settings, run_name: str, params: dict[str, Any], tags: dict[str, str]
) -> tuple[str, bool]:
    """The MLflow run of `run_name` (resumed training continues it), or a new one."""
    exp = experiment_id(client, settings)
    found = client.search_runs([exp], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id, True
    run = client.create_run(exp, run_name=run_name, tags={RUN_NAME_TAG: run_name, **tags})
    client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, _param(v)) for k, v in params.items()])
    return run.info.run_id, False


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int) -> None:
    import time

    now = int(time.time() * 1000)
    batch = [mlflow.entities.Metric(k, float(v), now, step) for k, v in metrics.items() if v == v]
    for start in range(0, len(batch), 900):  # MLflow caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=batch[start : start + 900])


def log_image(client: MlflowClient, run_id: str, image, artifact_path: str) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact_path).name
        path.write_bytes(buffer.getvalue())
        client.log_artifact(run_id, str(path), str(Path(artifact_path).parent) if "/" in artifact_path else None)


def code_version() -> str:
    """The git commit of this checkout when there is one, else the package version."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{gan_core_version}+g{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return gan_core_version


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
