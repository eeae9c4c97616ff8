"""Distributed GAN training on Ray Train (V2): gan_core's loop in every worker, G and D under DDP.

The driver checks storage, opens (or finds) the MLflow run, and starts a TorchTrainer whose
workers each train on their slice of every global batch. Rank 0 writes checkpoints through
Ray's storage (local or S3), uploaded in the background while training goes on, and logs
metrics to MLflow by run id. Running again with the same run name resumes from the newest
checkpoint; a worker that dies is replaced and training resumes from the last checkpoint
(FailureConfig). Ctrl-C or SIGTERM at the driver stops the workers with a checkpoint of the step
they reached (stop_relay.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gan_core.config import ExperimentConfig, from_dict
from gan_core.data import Dataset
from gan_core.models.critic_norm import convert_sync_batchnorm
from gan_core.outputs.progress import ProgressPrinter
from gan_core.training import (
    Hook,
    NonFiniteLossError,
    StopRequest,
    TrainingStopped,
    TrainState,
    fit,
    load_checkpoint,
    save_checkpoint,
    stop_on_signals,
)
from pipelines.settings import TRACKING_WAIT_S

if TYPE_CHECKING:
    from pipelines.storage import Storage

CHECKPOINT_FILE = "state.pt"
FRAMES = "samples/frames"  # MLflow artifact folder of the per-step sample pictures
# A checkpoint's `extra` entry for the metrics that had not reached MLflow when it was written.
TRACKING_BACKLOG = "tracking_backlog"
UPLOAD_WAIT_WORTH_LOGGING_S = 1.0
CHECKPOINT_COPY_PREFIX = "ganpipe-checkpoint-"  # + the writing process's id: rank 0's local copies
RAY_CHECKPOINT_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints
DEFAULT_CPUS_PER_WORKER = 1.0  # on a cluster at RAY_ADDRESS, which other jobs share

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scaling:
    workers: int = 2
    cpus_per_worker: float | None = None  # None: decided by `sized_for` once the cluster is known
    gpus_per_worker: float = 0.0
    sync_batchnorm: bool = False
    max_failures: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"--workers={self.workers} is not allowed: an integer >= 1")
        if (self.cpus_per_worker is not None and self.cpus_per_worker <= 0) or self.gpus_per_worker < 0:
            raise ValueError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
        if self.sync_batchnorm and not self.gpus_per_worker:
            # Else every worker fails in DDP's set-up ("SyncBatchNorm layers only work with GPU
            # modules"), three attempts and some 200 lines later.
            raise ValueError(
                "--sync-batchnorm needs GPU workers (--gpus-per-worker > 0): torch syncs batch norm on GPUs only"
            )

    def sized_for(self, local_cpus: float | None) -> Scaling:
        """CPUs per worker decided: as asked; else, on a local cluster this command started, its
        CPUs shared among the workers; else (a shared cluster) 1. Ray gives a worker as many torch
        threads as CPUs it reserves: one worker alone on 2 cores trained mnist-acgan at 6 steps/s
        with 1 CPU and at 9-10 with 2."""
        if self.cpus_per_worker is not None:
            return self
        share = max(1, int(local_cpus // self.workers)) if local_cpus else DEFAULT_CPUS_PER_WORKER
        return replace(self, cpus_per_worker=float(share))

    def per_worker(self) -> dict[str, float]:
        """The Ray resources each worker reserves."""
        resources = {"CPU": self.cpus_per_worker or DEFAULT_CPUS_PER_WORKER}
        if self.gpus_per_worker:
            resources["GPU"] = self.gpus_per_worker
        return resources


# --------------------------------------------------------------------------- worker side


class StopTraining(Exception):
    """Raised by a hook on every rank to end training early; the worker then returns normally."""


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
        self.tracking_wait_s = tracking_wait_s  # how long the end of training waits for MLflow
        self._tracking = None
        self._last_metrics: dict[str, float] = {}
        self._upload_in_flight = False  # rank 0: a checkpoint Ray may still be uploading

    @property
    def tracking(self):
        """Rank 0's queue of records for the MLflow run (None on other ranks, or without a run)."""
        if self._tracking is None and self.run_id and self.rank == 0:
            from mlflow.tracking import MlflowClient

            from pipelines.tracking_queue import TrackingQueue

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
        from gan_core.outputs import training_picture
        from gan_core.pictures import labelled

        picture = labelled(training_picture(samples, state, self.dataset, f"step {step}"), f"step {step}")
        self.tracking.log_image(picture, f"{FRAMES}/step-{step:06d}.png")

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
        if pid.isdigit() and not process_exists(int(pid)):
            log.info("removing %s, left by worker process %s, which has ended", folder, pid)
            shutil.rmtree(folder, ignore_errors=True)  # another rank on this node may be at it too


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: asks only whether the process is there
    except ProcessLookupError:
        return False
    except PermissionError:  # there, but another user's
        return True
    return True


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


class CrashOnce(Hook):
    """Test aid: once, at a step, the given rank kills its own process (kind "exit", to exercise
    fault tolerance) or fills its generator's first weight with NaN (kind "nan": divergence)."""

    def __init__(self, rank: int, at_step: int, marker: str, kind: str = "exit", in_train_run: bool = True) -> None:
        self.rank, self.at_step, self.marker, self.kind = rank, at_step, marker, kind
        self.in_train_run = in_train_run  # False in a Tune trial: no Ray Train checkpoints to wait for

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        if step < self.at_step or os.path.exists(self.marker):
            return
        if self.kind == "nan":
            Path(self.marker).write_text(str(step))
            with torch.no_grad():
                next(state.generator.parameters()).fill_(float("nan"))
            return
        if self.in_train_run:
            import ray.train

            # Die only once Ray has registered the checkpoints reported so far, so that the
            # test knows which checkpoint the replacement must resume from.
            ray.train.get_all_reported_checkpoints()
        Path(self.marker).write_text(str(step))
        os._exit(1)


class FailsEveryAttempt(Hook):
    """Test aid: from a step on, raises on every attempt (a bug, or a config that cannot train:
    out of memory), adding a line to `marker` each time so that a test can count the attempts."""

    def __init__(self, at_step: int, marker: str) -> None:
        self.at_step, self.marker = at_step, marker

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        if step >= self.at_step:
            with open(self.marker, "a") as attempts:
                attempts.write(f"{step}\n")
            raise RuntimeError(f"fails at step {step} on every attempt (test aid)")


HookMaker = Callable[[int, int, Dataset, dict[str, Any]], list[Hook]]


def train_hooks(rank: int, world_size: int, dataset: Dataset, loop_config: dict[str, Any]) -> list[Hook]:
    """`ganpipe train`'s hooks: checkpoints through Ray, metrics and frames to MLflow, and rank
    0's progress lines (step, losses, samples/s, ETA), which Ray forwards to the command's output."""
    hooks: list[Hook] = [
        RayReporter(
            rank,
            world_size,
            loop_config.get("run_id"),
            loop_config.get("tracking_uri"),
            loop_config.get("check_sync", True),
            dataset,
            loop_config.get("tracking_wait_s", TRACKING_WAIT_S),
        )
    ]
    if rank == 0:  # the ranks step together: one of them speaks for the run
        hooks.append(ProgressPrinter(write_line))
    crash = loop_config.get("crash")
    if crash and crash["rank"] == rank:
        hooks.append(CrashOnce(rank, crash["step"], crash["marker"], crash.get("kind", "exit")))
    return hooks


def write_line(line: str) -> None:
    """A line on the worker's stderr, which Ray forwards to the command's output. Not print():
    Ray Train's workers replace print with a function that also logs the line, so it arrived twice."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def train_worker(loop_config: dict[str, Any], make_hooks: HookMaker = train_hooks) -> None:
    """Runs in every Ray Train worker; `make_hooks` decides what reports and when."""
    import ray.train
    import ray.train.torch

    from gan_core.training.distributed import ddp
    from pipelines.datasets import load_for

    remove_orphaned_copies()  # rank 0 of an attempt that failed may have run on this node
    hide_report_lines()
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    config = from_dict(loop_config["config"])
    device = ray.train.torch.get_device()
    dataset = load_for(config)

    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = load_checkpoint(Path(folder) / CHECKPOINT_FILE)

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        if world_size == 1:
            return module
        if loop_config.get("sync_batchnorm"):
            module = convert_sync_batchnorm(module)  # critics keep real and fake statistics apart
        return ddp(module, device)

    hooks = make_hooks(rank, world_size, dataset, loop_config)
    stop = StopRequest()
    try:
        with contextlib.suppress(StopTraining), watching_driver(stop, rank, loop_config):
            fit(
                config,
                dataset,
                hooks,
                resume_from=resume,
                rank=rank,
                world_size=world_size,
                wrap=wrap,
                device=device,
                stop=stop,
            )
    except TrainingStopped:
        # Every rank stopped at the same step, after its checkpoint; the driver reports the stop.
        close_tracking(hooks)
    except NonFiniteLossError as error:
        # Every rank stops here at the same step (the loop agrees on it). Failing would make Ray
        # start the workers again from the last checkpoint, only to diverge again, up to
        # --max-failures times; so the workers end normally and the driver raises the error.
        close_tracking(hooks)  # the metrics leading up to the divergence reach MLflow
        if rank == 0:
            folder, name = divergence_file(loop_config["attempt"])
            folder.write_bytes(name, str(error).encode())


class _WithoutReportLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Reporting training result")


def hide_report_lines() -> None:
    """Ray Train logs every `ray.train.report` with the whole TrainingReport: a line of 500+
    characters per checkpoint repeating the metrics the progress line already gave. Its
    "Checkpoint successfully created" line, which says where the checkpoint went, stays."""
    try:
        from ray.train.v2._internal.execution import context  # a private module: if it moves, the lines stay
    except ImportError:
        return
    logger = logging.getLogger(context.__file__)  # Ray names this logger after the file
    if not any(isinstance(f, _WithoutReportLines) for f in logger.filters):
        logger.addFilter(_WithoutReportLines())


def close_tracking(hooks: list[Hook]) -> None:
    for hook in hooks:
        if isinstance(hook, RayReporter):
            hook.close_tracking()


def watching_driver(stop: StopRequest, rank: int, loop_config: dict[str, Any]) -> contextlib.AbstractContextManager:
    """Rank 0 of a run the driver may ask to stop (`ganpipe train`, not a Tune trial) looks for its marker."""
    if rank != 0 or not loop_config.get("graceful_stop"):
        return contextlib.nullcontext()
    from pipelines.stop_relay import watching_for_stop

    return watching_for_stop(stop, *stop_file(loop_config["attempt"]))


# --------------------------------------------------------------------------- driver side


def run_trainer(
    config: ExperimentConfig,
    run_name: str,
    storage_uri: str,
    scaling: Scaling,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    crash: dict[str, Any] | None = None,
    worker: Callable[[dict[str, Any]], None] = train_worker,
    extra: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    graceful_stop: bool = False,
):
    """Start (or resume) the TorchTrainer; returns Ray's Result. `worker`, `extra` (more entries
    of the loop config) and `callbacks` (Ray Train's) let a Tune trial drive it. With
    `graceful_stop`, Ctrl-C or SIGTERM makes the workers stop with a checkpoint of the step they
    reached, and TrainingStopped is raised (a second Ctrl-C quits at once)."""
    import ray.train

    from pipelines.storage import Storage

    filesystem, path = Storage.from_uri(storage_uri).pyarrow()
    # Records of this attempt's own (a divergence, a stop): none left from an earlier run can be
    # mistaken for them.
    attempt = {"storage_uri": storage_uri, "run_name": run_name, "id": uuid.uuid4().hex}
    trainer = trainer_class(graceful_stop)(
        worker,
        train_loop_config={
            "config": config.to_dict(),
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "sync_batchnorm": scaling.sync_batchnorm,
            "crash": crash,
            "attempt": attempt,
            "graceful_stop": graceful_stop,
            **(extra or {}),
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.workers, use_gpu=scaling.gpus_per_worker > 0, resources_per_worker=scaling.per_worker()
        ),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=path,
            storage_filesystem=filesystem,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.train.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures),
            callbacks=callbacks,
        ),
    )
    stop = StopRequest()
    signals = stopping_on_signals(stop, attempt) if graceful_stop else contextlib.nullcontext()
    try:
        with signals:
            result = trainer.fit()
    finally:  # the last attempt's workers have ended: none will sweep this node after them
        remove_orphaned_copies()
    raise_if_diverged(attempt)
    if stop.requested:
        raise stop.stopped_at(int(result.metrics.get("step", 0)) if result.metrics else 0)
    return result


def trainer_class(graceful_stop: bool) -> type:
    """TorchTrainer; for a graceful stop, without Ray's own Ctrl-C handler, which would abort the
    run at once (losing the steps since the last checkpoint) and replace ours."""
    from ray.train.torch import TorchTrainer

    if not graceful_stop:
        return TorchTrainer

    class TrainerKeepingOurSignalHandler(TorchTrainer):
        def _register_sigint_handler(self, controller) -> None:  # Ray Train V2's, called by fit()
            pass

    return TrainerKeepingOurSignalHandler


@contextlib.contextmanager
def stopping_on_signals(stop: StopRequest, attempt: dict[str, str]) -> Iterator[None]:
    """The driver's Ctrl-C or SIGTERM sets `stop`, which reaches rank 0 through storage."""
    from pipelines.stop_relay import relayed_to_workers

    # Rank 0 reads the relay every second; the ranks agree about once a second (agreement.py).
    announcement = "the workers stop within seconds with a checkpoint; Ctrl-C again quits without one"
    with stop_on_signals(stop, announcement), relayed_to_workers(stop, *stop_file(attempt)):
        yield


def attempt_folder(attempt: dict[str, str]) -> Storage:
    """The run's storage folder, where this attempt's records go."""
    from pipelines.storage import Storage

    return Storage.from_uri(attempt["storage_uri"]).child(attempt["run_name"])


def divergence_file(attempt: dict[str, str]) -> tuple[Storage, str]:
    """Where rank 0 records a divergence."""
    return attempt_folder(attempt), f"diverged-{attempt['id']}.txt"


def stop_file(attempt: dict[str, str]) -> tuple[Storage, str]:
    """Where the driver asks the workers to stop."""
    return attempt_folder(attempt), f"stop-{attempt['id']}.txt"


def raise_if_diverged(attempt: dict[str, str]) -> None:
    """Raise the NonFiniteLossError that rank 0 recorded, if training stopped on one."""
    folder, name = divergence_file(attempt)
    if folder.exists(name):
        message = folder.read_bytes(name).decode()
        folder.delete(name)
        raise NonFiniteLossError(message)


def steps_trained(checkpoints: Storage, run_name: str) -> int | None:
    """The step of the run's newest checkpoint in Ray's storage, from the snapshot Ray Train keeps
    of its checkpoints; None for a run that has none yet."""
    import ray.train

    if not checkpoints.child(run_name).exists(RAY_CHECKPOINT_SNAPSHOT):
        return None
    filesystem, path = checkpoints.pyarrow()
    result = ray.train.Result.from_path(f"{path}/{run_name}", storage_filesystem=filesystem)
    return int(result.metrics["step"]) if result.metrics and "step" in result.metrics else None


def load_result_checkpoint(result) -> dict[str, Any]:
    if result.checkpoint is None:
        raise RuntimeError(f"the training run at {result.path} reported no checkpoint")
    with result.checkpoint.as_directory() as folder:
        return load_checkpoint(Path(folder) / CHECKPOINT_FILE)
