"""What runs in every Ray Train worker: gan_core's loop, G and D under DDP, reporting through hooks."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from gan_core.data import Dataset
from gan_core.metrics import CollapseWatch, Evaluator, watch_interval
from gan_core.models.critic_norm import convert_sync_batchnorm
from gan_core.outputs.progress import ProgressPrinter
from gan_core.training import Hook, NonFiniteLossError, StopRequest, TrainingStopped, fit, load_checkpoint
from gan_core.training.distributed import ddp
from pipelines.storage.datasets import load_for
from pipelines.train.options import HookFactory, WorkerOptions
from pipelines.train.reporter import CHECKPOINT_FILE, RayReporter, remove_orphaned_copies
from pipelines.train.stop_relay import watching_for_stop

# The hooks a worker reports through, by (rank, world size, dataset, options).
HookMaker = Callable[[int, int, Dataset, WorkerOptions], list[Hook]]


class StopTraining(Exception):
    """Raised by a hook on every rank to end training early; the worker then returns normally."""


def train_hooks(rank: int, world_size: int, dataset: Dataset, options: WorkerOptions) -> list[Hook]:
    """`ganpipe train`'s hooks: checkpoints through Ray, metrics and frames to MLflow, and rank
    0's progress lines (step, losses, samples/s, ETA), which Ray forwards to the command's output.
    With an MLflow run, rank 0 also watches for mode collapse; its coverage goes into the metrics
    the reporter logs, so it comes before it."""
    reporter = RayReporter(
        rank, world_size, options.run_id, options.tracking_uri, options.check_sync, dataset, options.tracking_wait_s
    )
    if rank != 0:
        return [reporter]
    watch = [collapse_watch(dataset, options)] if options.run_id else []
    return [*watch, reporter, ProgressPrinter(write_line)]  # rank 0 speaks for the run


def collapse_watch(dataset: Dataset, options: WorkerOptions) -> CollapseWatch:
    """Coverage about ten times a run, as the `coverage` metric (a curve in MLflow), with a line
    when it falls: the run's evaluation at the end sees only the generator the run ended with."""
    config = options.config
    evaluator = Evaluator(dataset, config.eval, cache_dir=options.classifier_cache, log=write_line)
    return CollapseWatch(
        evaluator,
        every=watch_interval(config.train),
        threshold=config.eval.collapse_threshold,
        on_collapse=lambda event: write_line(f"mode-collapse warning at step {event.step}: {event.reason}"),
    )


def write_line(line: str) -> None:
    """A line on the worker's stderr, which Ray forwards to the command's output. Not print():
    Ray Train's workers replace print with a function that also logs the line, so it arrived twice."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def train_worker(
    loop_config: dict[str, Any], make_hooks: HookMaker = train_hooks, extra_hooks: Sequence[HookFactory] = ()
) -> None:
    """Runs in every Ray Train worker; `make_hooks` decides what reports and when, `extra_hooks`
    add to it (see `run_trainer`)."""
    import ray.train
    import ray.train.torch

    remove_orphaned_copies()  # rank 0 of an attempt that failed may have run on this node
    options = WorkerOptions.from_dict(loop_config)
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    dataset = load_for(options.config)

    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = load_checkpoint(Path(folder) / CHECKPOINT_FILE)

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        if world_size == 1:
            return module
        if options.sync_batchnorm:
            module = convert_sync_batchnorm(module)  # critics keep real and fake statistics apart
        return ddp(module, device)

    hooks = make_hooks(rank, world_size, dataset, options) + [h for make in extra_hooks for h in make(rank)]
    stop = StopRequest()
    try:
        with contextlib.suppress(StopTraining), watching_driver(stop, rank, options):
            fit(
                options.config,
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
            options.attempt.folder().write_bytes(options.attempt.divergence_record, str(error).encode())


def close_tracking(hooks: list[Hook]) -> None:
    for hook in hooks:
        if isinstance(hook, RayReporter):
            hook.close_tracking()


def watching_driver(stop: StopRequest, rank: int, options: WorkerOptions) -> contextlib.AbstractContextManager:
    """Rank 0 of a run the driver may ask to stop (`ganpipe train`, not a Tune trial) looks for its record."""
    if rank != 0 or not options.graceful_stop:
        return contextlib.nullcontext()
    return watching_for_stop(stop, options.attempt.folder(), options.attempt.stop_record)
