"""The driver's side of Ray Train (V2): start (or resume) a TorchTrainer and read what it left.

Rank 0 writes checkpoints through Ray's storage (local or S3), uploaded in the background while
training goes on. Running again with the same run name resumes from the newest checkpoint; a
worker that dies is replaced and training resumes from the last checkpoint (FailureConfig).
Ctrl-C or SIGTERM at the driver stops the workers with a checkpoint of the step they reached
(stop_relay.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gan_core.config import ExperimentConfig
from gan_core.training import NonFiniteLossError, StopRequest, load_checkpoint, stop_on_signals
from pipelines.storage.location import Storage
from pipelines.train.options import Attempt, HookFactory, WorkerOptions
from pipelines.train.reporter import CHECKPOINT_FILE, remove_orphaned_copies
from pipelines.train.scaling import Scaling
from pipelines.train.stop_relay import relayed_to_workers
from pipelines.train.worker import train_worker

RAY_CHECKPOINT_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints


def run_trainer(
    options: WorkerOptions,
    scaling: Scaling,
    worker: Callable[[dict[str, Any]], None] = train_worker,
    hooks: Sequence[HookFactory] = (),
    callbacks: list[Any] | None = None,
):
    """Start (or resume) the TorchTrainer of `options.attempt`'s run; returns Ray's Result.
    `worker` and `callbacks` (Ray Train's) let a Tune trial drive it; `hooks` add hooks to every
    worker. With `options.graceful_stop`, Ctrl-C or SIGTERM makes the workers stop with a
    checkpoint of the step they reached, and TrainingStopped is raised (a second Ctrl-C quits at once)."""
    import ray.train

    attempt, config = options.attempt, options.config
    filesystem, path = Storage.from_uri(attempt.storage_uri).pyarrow()
    trainer = trainer_class(options.graceful_stop)(
        functools.partial(worker, extra_hooks=tuple(hooks)) if hooks else worker,
        train_loop_config=options.to_dict(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.workers, use_gpu=scaling.gpus_per_worker > 0, resources_per_worker=scaling.per_worker()
        ),
        run_config=ray.train.RunConfig(
            name=attempt.run_name,
            storage_path=path,
            storage_filesystem=filesystem,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.train.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures),
            callbacks=callbacks,
        ),
    )
    stop = StopRequest()
    signals = stopping_on_signals(stop, attempt) if options.graceful_stop else contextlib.nullcontext()
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
    run at once (losing the steps since the last checkpoint) and replace ours. The one method
    overridden is Ray Train V2's (Ray is pinned to its minor version)."""
    from ray.train.torch import TorchTrainer

    if not graceful_stop:
        return TorchTrainer

    class TrainerKeepingOurSignalHandler(TorchTrainer):
        def _register_sigint_handler(self, controller) -> None:  # Ray Train V2's, called by fit()
            pass

    return TrainerKeepingOurSignalHandler


@contextlib.contextmanager
def stopping_on_signals(stop: StopRequest, attempt: Attempt) -> Iterator[None]:
    """The driver's Ctrl-C or SIGTERM sets `stop`, which reaches rank 0 through storage."""
    # Rank 0 reads the relay every second; the ranks agree about once a second (agreement.py).
    announcement = "the workers stop within seconds with a checkpoint; Ctrl-C again quits without one"
    with stop_on_signals(stop, announcement), relayed_to_workers(stop, attempt.folder(), attempt.stop_record):
        yield


def raise_if_diverged(attempt: Attempt) -> None:
    """Raise the NonFiniteLossError that rank 0 recorded, if training stopped on one."""
    folder = attempt.folder()
    if folder.exists(attempt.divergence_record):
        message = folder.read_bytes(attempt.divergence_record).decode()
        folder.delete(attempt.divergence_record)
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


def worker_options(config: ExperimentConfig, run_name: str, storage_uri: str, **more: Any) -> WorkerOptions:
    """Options for a new attempt of `run_name`, whose checkpoints live under `storage_uri`."""
    return WorkerOptions(config, Attempt.new(storage_uri, run_name), **more)
