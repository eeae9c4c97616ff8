"""S3 that goes away during training: checkpoint uploads and Ray's own state writes wait for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipelines.ray_train import CHECKPOINT_FILE
from tests.integration.conftest import BUCKET, bucket_keys
from tests.integration.services import TcpProxy

pytestmark = pytest.mark.integration


def test_training_waits_out_an_s3_outage_and_loses_no_checkpoint(
    tmp_path: Path, s3: str, mlflow_url, ray_cluster, monkeypatch
):
    """`ganpipe train` on Ray with its checkpoints in S3, reached through a proxy that cuts every
    connection for 12 s after the first checkpoint. No worker may fail (max_failures=0): the
    uploads and the controller's run-state writes wait for S3 and the run ends with its checkpoints."""
    from gan_core.config import load_config, preset_path
    from pipelines.ray_train import Scaling
    from pipelines.settings import Settings
    from pipelines.train import train_distributed

    proxy = TcpProxy(int(s3.rsplit(":", 1)[1]))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # the driver's storage: Ray sends it to the workers
    prefix = f"runs-{tmp_path.name}"
    settings = Settings(tmp_path, f"s3://{BUCKET}/{prefix}", mlflow_url, "storage-outage", None, proxy.url)
    overrides = ["data.n_train=5000", "train.steps=2000", "train.log_every=100", "train.checkpoint_every=250"]
    config = load_config(preset_path("ring"), overrides)
    outage: dict[str, float] = {}

    def cut_after_the_first_checkpoint() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not _checkpoint_files(s3, prefix):
            time.sleep(0.2)
        proxy.cut()
        time.sleep(12)
        proxy.restore()
        outage["up"] = time.monotonic()

    watcher = threading.Thread(target=cut_after_the_first_checkpoint, daemon=True)
    watcher.start()
    try:
        result = train_distributed(config, "s3-outage", Scaling(workers=1, max_failures=0), settings, log=print)
    finally:
        watcher.join(timeout=60)
        proxy.close()

    assert outage.get("up"), "the outage never happened"
    assert proxy.turned_away > 0, "no storage call met the outage"
    assert result.steps == 2000
    kept = _checkpoint_files(s3, prefix)
    assert len(kept) == config.train.keep_checkpoints


def _checkpoint_files(endpoint_url: str, prefix: str) -> list[str]:
    """Checkpoint folders that hold a checkpoint file, read from moto itself (not through the proxy)."""
    keys = bucket_keys(f"{prefix}/checkpoints/", endpoint_url)
    return sorted({key.split("/")[-2] for key in keys if key.endswith(f"/{CHECKPOINT_FILE}")})


def test_copying_many_files_to_storage_in_parallel_finishes(tmp_path: Path, s3: str):
    """Ray Tune syncs its experiment folder with pyarrow's threaded copy_files; the retrying
    filesystem's uploads run inside that thread pool and must not wait on it (they did, and hung,
    while pyarrow's S3 writes went to the same pool in the background)."""
    import pyarrow.fs as pafs

    from pipelines.storage import Storage

    for index in range(40):
        (tmp_path / f"trial-{index}.json").write_bytes(bytes([index]) * 100_000)
    filesystem, root = Storage.from_uri(f"s3://{BUCKET}/sync-{tmp_path.name}").pyarrow()
    copying = threading.Thread(
        target=pafs.copy_files,
        args=(str(tmp_path), root),
        kwargs={"source_filesystem": pafs.LocalFileSystem(), "destination_filesystem": filesystem},
        daemon=True,
    )
    copying.start()
    copying.join(timeout=120)
    assert not copying.is_alive(), "copy_files into storage hung"
    assert len(bucket_keys(f"sync-{tmp_path.name}/", s3)) == 40
