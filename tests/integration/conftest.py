"""Session-wide services: a moto S3 server, an MLflow server whose artifacts live in it, local Ray."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

import tests.support.crashes
from pipelines.cluster.job_env import ray_runtime_env
from tests.integration.services import mlflow_server, moto_s3

BUCKET = "ganpipe-it"


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("moto")
    with moto_s3(folder) as endpoint:
        # Ray workers inherit the driver's environment, so set it before Ray starts.
        saved = {
            k: os.environ.get(k)
            for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
        }
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def mlflow_url(s3: str, tmp_path_factory: pytest.TempPathFactory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow"), f"s3://{BUCKET}/mlflow", s3) as url:
        yield url


@pytest.fixture(scope="session")
def ray_cluster(s3: str):
    import ray

    # The same job runtime env as `ensure_ray` gives the commands (the startup-timeout log filter).
    # Ray's workers unpickle the crash hooks without importing tests/ (not on their path).
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(tests.support.crashes)
    # address="local": a cluster of its own, whatever other Ray runs on the machine (a multi-node test's).
    ray.init(address="local", num_cpus=4, log_to_driver=False, runtime_env=ray_runtime_env())
    yield
    ray.shutdown()


def bucket_keys(prefix: str, endpoint_url: str | None = None) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint_url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture()
def settings(mlflow_url: str, tmp_path: Path):
    from pipelines.settings import Settings

    return Settings(
        home=tmp_path,
        storage_uri=f"s3://{BUCKET}/runs-{tmp_path.name}",
        tracking_uri=mlflow_url,
        experiment="integration",
        ray_address=None,
        s3_endpoint=os.environ["AWS_ENDPOINT_URL"],
    )
