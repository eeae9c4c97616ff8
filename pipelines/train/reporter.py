"""The hook through which a Ray Train worker reports: checkpoints to Ray's storage, metrics and
sample frames to MLflow (rank 0, in the background), and whether the ranks stay in sync."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import torch

from gan_core.data import Dataset
from gan_core.outputs import frame_title, training_picture
from gan_core.training import Hook, TrainState, save_checkpoint
from pipelines.settings import TRACKING_WAIT_S

CHECKPOINT_FILE = "state.pt"
FRAMES = "training_samples"  # the MLflow image key of the per-step sample pictures (a step slider in the UI)
# A checkpoint's `extra` entry for the metrics that had not reached MLflow when it was written.
TRACKING_BACKLOG = "tracking_backlog"
UPLOAD_WAIT_WORTH_LOGGING_S = 1.0
CHECKPOINT_COPY_PREFIX = "ganpipe-checkpoint-"  # + the writing process's id: rank 0's local copies

log = logging.getLogger(__name__)


class RayReporter(Hook):
    """Checkpoints through ray.train.report (every rank calls it: it is a barrier); rank 0 also
    logs metrics and sample grids to MLflow, and checks that all ranks hold the same weights."""

    def __init__(
        self,
        rank: int,
        world_size: int,
        run_id: str | None,
        tracking_uri: str | None,
        check_sync: bool,
        dataset: Dataset | None = None,
        tracking_wait_s: float = TRACKING_WAIT_S,
    ) -> None:
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset  # the 2-D mixtures draw their samples over the true modes
        self.run_id, self.tracking_uri = run_id, tracking_uri
        self.check_sync = check_sync
        self.tracking_wait_s = tracking_wait_s
        self._tracking = None
        self._last_metrics: dict[str, float] = {}
        self._upload_in_flight = False  # rank 0: a checkpoint Ray may still be uploading

    @property
    def tracking(self):
        """Rank 0's queue of records for the MLflow run (None on other ranks, or without a run)."""
        if self._tracking is None and self.run_id and self.rank == 0:
            # Imported here: a worker that tracks nothing (no run) needs neither MLflow nor the sender.
            from mlflow.tracking import MlflowClient

            from pipelines.tracking.sender import TrackingQueue, quick_failing_http

            quick_failing_http()
            client = MlflowClient(tracking_uri=self.tracking_uri)
            self._tracking = TrackingQueue(client, self.run_id, str(self.tracking_uri))
        return self._tracking

    def on_start(self, state: TrainState) -> None:
        # Metrics that had not reached MLflow when the checkpoint we resume from was written.
        backlog = state.extra.pop(TRACKING_BACKLOG, None)
        if backlog and self.tracking is not None:
            self.tracking.resend(backlog)

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        if self.check_sync and self.world_size > 1:
            metrics["rank_weight_spread"] = weight_spread(state)
        self._last_metrics = dict(metrics)
        if self.tracking is not None:
            self.tracking.log_metrics(step, metrics)

    def on_samples(self, step: int, samples: torch.Tensor, state: TrainState) -> None:
        """Frames of the training GIF, which the driver assembles when training ends."""
        if self.tracking is None or self.dataset is None:
            return

        picture = training_picture(samples, state, self.dataset, frame_title(state, step))
        self.tracking.log_step_image(picture, FRAMES, step)

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], state: TrainState) -> None:
        metrics = {"step": step, **{k: v for k, v in self._last_metrics.items() if isinstance(v, int | float)}}
        if self.tracking is not None and (backlog := self.tracking.backlog()):
            checkpoint["extra"][TRACKING_BACKLOG] = backlog
        self.report(metrics, checkpoint)

    def on_end(self, state: TrainState) -> None:
        self.close_tracking()

    def close_tracking(self) -> None:
        """Send what rank 0 still holds for MLflow, waiting up to `tracking_wait_s`."""
        if self._tracking is not None:
            self._tracking.close(self.tracking_wait_s)

    def report(self, metrics: dict[str, Any], checkpoint: dict[str, Any]) -> None:
        """Every rank reports; rank 0 attaches the checkpoint, which Ray uploads in the background
        while training goes on (and deletes locally once uploaded). At most one upload is in
        flight: a checkpoint first waits for the one before it to be committed, so slow or absent
        storage pauses training one checkpoint later instead of at once, and copies waiting for
        storage never pile up on the worker's disk."""
        import ray.train

        if self.rank != 0:
            ray.train.report(metrics, checkpoint=None)
            return
        self._wait_for_previous_upload(metrics.get("step"))
        folder = tempfile.mkdtemp(prefix=f"{CHECKPOINT_COPY_PREFIX}{os.getpid()}-")
        save_checkpoint(checkpoint, Path(folder) / CHECKPOINT_FILE)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(folder),
            checkpoint_upload_mode=ray.train.CheckpointUploadMode.ASYNC,
        )
        self._upload_in_flight = True

    def _wait_for_previous_upload(self, step: int | None) -> None:
        if not self._upload_in_flight:
            return
        import ray.train

        started = time.monotonic()
        # Returns once the controller has registered every report so far, i.e. after the upload.
        ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
        waited = time.monotonic() - started
        if waited >= UPLOAD_WAIT_WORTH_LOGGING_S:
            log.warning("the checkpoint at step %s waited %.0f s for the previous one to reach storage", step, waited)


def remove_orphaned_copies() -> None:
    """Delete the local checkpoint copies whose worker process is gone. Ray deletes a copy once it
    is uploaded, but a worker that died first (an upload that failed for good, a crash) leaves its
    copy in the temp folder, one per failure, as large as the checkpoint."""
    for folder in Path(tempfile.gettempdir()).glob(f"{CHECKPOINT_COPY_PREFIX}*"):
        pid = folder.name.removeprefix(CHECKPOINT_COPY_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            log.info("removing %s, left by worker process %s, which has ended", folder, pid)
            shutil.rmtree(folder, ignore_errors=True)  # another rank on this node may be at it too


def weight_spread(state: TrainState) -> float:
    """Largest difference between ranks of any G or D parameter (0.0 when in sync)."""
    import torch.distributed as dist

    flat = torch.cat(
        [p.detach().float().flatten() for p in [*state.generator.parameters(), *state.discriminator.parameters()]]
    )
    low, high = flat.clone(), flat.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return float((high - low).abs().max())
