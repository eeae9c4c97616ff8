"""Where the pipeline's services are, from the environment; nothing is read at import time.

With nothing set, everything is local: a local Ray cluster, MLflow in a SQLite file with
artifacts in a folder, storage in a folder. Secrets (AWS keys) are never copied into this
object: boto3 and pyarrow read them from the standard variables themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# How long, by default, a command waits for the MLflow server to answer before it starts (and after
# training), and the end of a training run for the metrics held while MLflow did not answer.
TRACKING_WAIT_S = 600.0
# How long, by default, one storage call (a checkpoint upload, a read) waits for S3 to answer.
STORAGE_WAIT_S = 600.0
# How long, by default, a command waits for the Ray cluster at RAY_ADDRESS to answer before it starts.
RAY_WAIT_S = 600.0


@dataclass(frozen=True)
class Settings:
    home: Path  # local root for the embedded default
    storage_uri: str  # checkpoints and datasets: a path, file://... or s3://bucket/prefix
    tracking_uri: str  # MLflow
    experiment: str
    ray_address: str | None  # None: start a local cluster
    s3_endpoint: str | None  # S3-compatible endpoint (MinIO, moto), or None for AWS
    tracking_wait_s: float = TRACKING_WAIT_S  # GANPIPE_TRACKING_WAIT_S
    ray_wait_s: float = RAY_WAIT_S  # GANPIPE_RAY_WAIT_S

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = home_folder(env).resolve()
        return cls(
            home=home,
            storage_uri=env.get("GANPIPE_STORAGE", str(home / "storage")),
            tracking_uri=env.get("MLFLOW_TRACKING_URI", default_tracking_uri(home)),
            experiment=env.get("GANPIPE_EXPERIMENT", "ganpipe"),
            ray_address=env.get("RAY_ADDRESS") or None,
            s3_endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            tracking_wait_s=seconds_setting(env, "GANPIPE_TRACKING_WAIT_S", TRACKING_WAIT_S),
            ray_wait_s=seconds_setting(env, "GANPIPE_RAY_WAIT_S", RAY_WAIT_S),
        )

    @property
    def local_artifacts(self) -> Path:
        """Artifact root used when MLflow runs on the embedded SQLite store."""
        return self.home / "mlartifacts"

    @property
    def classifier_cache(self) -> str:
        """The feature classifiers' cache: trained once per dataset, read by every evaluation here."""
        return str(self.home / "classifiers")


def default_tracking_uri(home: Path) -> str:
    """MLflow in a SQLite file in the home folder, when MLFLOW_TRACKING_URI is unset."""
    return f"sqlite:///{home / 'mlflow.db'}"


def storage_wait_s(environ: dict[str, str] | None = None) -> float:
    """GANPIPE_STORAGE_WAIT_S: read where a storage filesystem is made, and sent with it to Ray's workers."""
    env = os.environ if environ is None else environ
    return seconds_setting(env, "GANPIPE_STORAGE_WAIT_S", STORAGE_WAIT_S)


def seconds_setting(env, name: str, default: float) -> float:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"{name}={text!r} is not allowed: a number of seconds >= 0")
    return value


def home_folder(environ: dict[str, str] | None = None) -> Path:
    """GANPIPE_HOME as given (default runs, relative to the working folder)."""
    return Path((os.environ if environ is None else environ).get("GANPIPE_HOME", "runs"))
