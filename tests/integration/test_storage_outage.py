"""S3 that goes away during training: training goes on, checkpoint uploads and Ray's own state writes wait for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipelines.train.reporter import CHECKPOINT_FILE
from tests.integration.conftest import BUCKET, bucket_keys
from tests.integration.services import TcpProxy

pytestmark = pytest.mark.integration


def test_training_goes_on_through_an_s3_outage_and_loses_no_checkpoint(
    tmp_path: Path, s3: str, mlflow_url, ray_cluster, monkeypatch
):
    """`ganpipe train` on Ray with its checkpoints in S3, reached through a proxy that cuts every
    connection once training is past its first checkpoint. Training must go on past the next
    checkpoint while S3 is cut (its upload waits in the background), and no worker may fail
    (max_failures=0): the uploads and the controller's run-state writes wait for S3, and the run
    ends with its checkpoints."""
    from gan_core.config import load_config, preset_path
    from pipelines.settings import Settings
    from pipelines.train.driver import train_distributed
    from pipelines.train.scaling import Scaling

    proxy = TcpProxy(int(s3.rsplit(":", 1)[1]))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # the driver's storage: Ray sends it to the workers
    settings = Settings(tmp_path, f"s3://{BUCKET}/runs-{tmp_path.name}", mlflow_url, "storage-outage", None, proxy.url)
    every = 250
    overrides = ["data.n_train=5000", "train.steps=2000", "train.log_every=100", f"train.checkpoint_every={every}"]
    config = load_config(preset_path("ring"), overrides)
    steps = LoggedSteps(mlflow_url, "storage-outage", "s3-outage")
    outage: dict[str, int] = {}

    def cut_then_restore() -> None:
        """Cut S3 once the first checkpoint is well behind (its upload done), and restore it once
        training has logged a step past the next checkpoint, or after 60 s if it never does."""
        steps.wait_for(every + 150, timeout_s=180)
        proxy.cut()
        outage["cut_at"] = steps.highest()
        outage["next_checkpoint"] = (outage["cut_at"] // every + 1) * every
        steps.wait_for(outage["next_checkpoint"] + 1, timeout_s=60)
        outage["trained_to"] = steps.highest()
        proxy.restore()

    watcher = threading.Thread(target=cut_then_restore, daemon=True)
    watcher.start()
    try:
        result = train_distributed(config, "s3-outage", Scaling(workers=1, max_failures=0), settings, log=print)
    finally:
        watcher.join(timeout=60)
        proxy.close()

    assert "trained_to" in outage, f"the outage never happened: {outage}"
    assert proxy.turned_away > 0, "no storage call met the outage"
    assert outage["trained_to"] > outage["next_checkpoint"], f"training stopped at the checkpoint: {outage}"
    assert result.steps == 2000
    kept = _checkpoint_files(s3, f"runs-{tmp_path.name}")
    assert len(kept) == config.train.keep_checkpoints


class LoggedSteps:
    """The highest step whose metrics reached the MLflow run `run_name` (read from the server)."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client, self.experiment, self.run_name = MlflowClient(tracking_uri), experiment, run_name
        self._run_id: str | None = None  # looked up once the driver has opened the run

    def highest(self) -> int:
        if self._run_id is None:
            self._run_id = self._find_run()
            if self._run_id is None:
                return -1
        return max((point.step for point in self.client.get_metric_history(self._run_id, "d_loss")), default=-1)

    def _find_run(self) -> str | None:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            return None
        runs = self.client.search_runs(
            [found.experiment_id], filter_string=f"attributes.run_name = '{self.run_name}'", max_results=1
        )
        return runs[0].info.run_id if runs else None

    def wait_for(self, step: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.highest() < step:
            time.sleep(0.2)


def _checkpoint_files(endpoint_url: str, prefix: str) -> list[str]:
    """Checkpoint folders that hold a checkpoint file, read from moto itself (not through the proxy)."""
    keys = bucket_keys(f"{prefix}/checkpoints/", endpoint_url)
    return sorted({key.split("/")[-2] for key in keys if key.endswith(f"/{CHECKPOINT_FILE}")})


def test_copying_many_files_to_storage_in_parallel_finishes(tmp_path: Path, s3: str):
    """Ray Tune syncs its experiment folder with pyarrow's threaded copy_files; the retrying
    filesystem's uploads run inside that thread pool and must not wait on it (they did, and hung,
    while pyarrow's S3 writes went to the same pool in the background)."""
    import pyarrow.fs as pafs

    from pipelines.storage.location import Storage

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
