"""The `prepare` flow: read a source, validate it, store it as a versioned dataset.

Validation runs before anything is written, so bad input leaves storage untouched. The
version is the content hash: re-running on the same input finds the stored version and
writes nothing; changed input gets a new version beside the old one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gan_core.data import Dataset
from gan_core.data.validation import validate_dataset
from pipelines.flows.retries import TRANSIENT_RETRIES
from pipelines.settings import Settings
from pipelines.storage.datasets import DatasetVersion, publish, read_source
from pipelines.storage.location import Storage


@task(name="read-source", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def read_and_validate(source: str, root: str, n_train: int, seed: int) -> tuple[Dataset, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as scratch:
        dataset, origin = read_source(source, root, n_train, seed, Path(scratch))
    where = origin["root"] or source  # fashion-mnist without a root: the Debian folder it was read from
    validate_dataset(dataset, where)
    get_run_logger().info("read %s: %s", where, dataset.summary())
    return dataset, origin


@task(name="store-version", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def store_version(dataset: Dataset, origin: dict[str, Any], storage_uri: str) -> DatasetVersion:
    storage = Storage.from_uri(storage_uri)
    storage.check(get_run_logger().info)
    version = publish(dataset, storage, origin)
    verb = "reusing stored" if version.reused else "wrote"
    get_run_logger().info("%s %s version %s at %s", verb, version.name, version.version, version.uri)
    return version


@flow(name="prepare", log_prints=True)
def prepare(source: str = "digits", root: str = "", n_train: int = 100_000, seed: int = 0) -> DatasetVersion:
    """Validate `source` (a dataset name; IDX sources read the folder or s3:// prefix `root`, fashion-mnist
    by default Debian's folder) and store a version."""
    settings = Settings.from_env()
    dataset, origin = read_and_validate(source, root, n_train, seed)
    return store_version(dataset, origin, settings.storage_uri)
