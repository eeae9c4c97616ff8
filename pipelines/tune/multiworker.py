"""Multi-worker Tune trials (`--workers-per-trial N`): the trial drives a Ray Train TorchTrainer.

This is Ray Train V2's pattern for Tune: the function trainable builds a `TorchTrainer` with
`ray.tune.integration.ray_train.TuneReportCallback`, which passes what the workers report on
to the trial. The workers run `ganpipe train`'s worker (G and D under DDP). At each milestone
rank 0 evaluates exactly as an in-process trial does (`Milestones.evaluate`: objective,
protocol metrics, stop reason, MLflow child run), every rank reports (a barrier), and all
ranks stop together when rank 0 finds a collapse. Tune receives rank 0's metrics plus
`checkpoint_path`; the checkpoints themselves stay in the trial's Train run, in storage at
`tune/NAME/trainers/TRIAL_ID`, from which an interrupted trial resumes.

Resources: Train V2 reserves its workers in a placement group of its own (not the trial's), so
the trial asks Tune for a token CPU share only, and the search runs no more trials at once than
the cluster has room for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from gan_core.data import Dataset
from gan_core.training import Hook, NonFiniteLossError, TrainState
from pipelines.cluster.room import Capacity, check_room
from pipelines.runtime.faults import first_line
from pipelines.settings import TRACKING_WAIT_S
from pipelines.storage.location import Storage
from pipelines.train.options import WorkerOptions
from pipelines.train.reporter import RayReporter
from pipelines.train.scaling import Scaling
from pipelines.train.trainer import run_trainer, steps_trained, worker_options
from pipelines.train.worker import train_worker
from pipelines.tune.milestones import Milestones, StopTrial
from pipelines.tune.options import SearchOptions, TrialSpec
from pipelines.tune.space import apply_overrides
from pipelines.tune.trials import mlflow_child, report_divergence, trial_evaluator

DRIVER = {"cpu": 0.01}  # the trial only drives the trainer (Tune refuses 0)


def worker_resources(options: SearchOptions) -> dict[str, float]:
    """Each worker's share of the trial's CPUs and GPUs."""
    n = options.workers_per_trial
    return {"CPU": options.cpus_per_trial / n, "GPU": options.gpus_per_trial / n}


def trial_resources(
    options: SearchOptions, capacity: Capacity, log: Callable[[str], None]
) -> tuple[dict[str, float], int]:
    """The trial driver's resources, and how many trials may run at once on this cluster (on one
    that may grow, as many as asked: its nodes may not be there yet when the search starts)."""
    hint = "Ask for fewer --workers-per-trial, or a smaller --cpus-per-trial or --gpus-per-trial"
    check_room(options.workers_per_trial, worker_resources(options), "worker", hint, capacity, log)
    if capacity.may_grow:
        return DRIVER, options.max_concurrent
    cluster = capacity.total
    need = {k: v * options.workers_per_trial for k, v in worker_resources(options).items() if v > 0}
    # The trial's own driver holds DRIVER too: without it, a trial whose workers take every CPU
    # "fitted", and Ray waited for ever for CPUs the driver held.
    need["CPU"] = need.get("CPU", 0.0) + DRIVER["cpu"]
    fits = min(int(cluster.get(k, 0.0) // v) for k, v in need.items())
    if fits < 1:
        raise ValueError(f"a trial of {options.workers_per_trial} workers needs {need}; the cluster has {cluster}")
    if fits < options.max_concurrent:
        log(f"the cluster fits {fits} trial(s) of {options.workers_per_trial} workers: running {fits} at once")
    return DRIVER, min(options.max_concurrent, fits)


class TrialReporter(RayReporter):
    """Milestones of a multi-worker trial. `judge` (rank 0 only) evaluates and decides collapse."""

    def __init__(
        self,
        rank: int,
        world_size: int,
        judge: Milestones | None,
        checkpoint_every: int,
        tracking_wait_s: float = TRACKING_WAIT_S,
    ) -> None:
        super().__init__(rank, world_size, None, None, check_sync=False, tracking_wait_s=tracking_wait_s)
        self.judge, self.checkpoint_every = judge, checkpoint_every

    def on_start(self, state: TrainState) -> None:
        if self.judge is not None:  # a resumed Train run goes on counting its milestones
            self.judge.milestone = state.step // self.checkpoint_every

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        super().on_metrics(step, metrics, state)
        if self.judge is not None:
            self.judge.on_metrics(step, {**metrics, "workers": self.world_size}, state)

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], state: TrainState) -> None:
        import torch.distributed as dist

        metrics = self.judge.evaluate(step, state) if self.judge is not None else {"step": step}
        verdict = [metrics.get("stop_reason", "")]
        if self.world_size > 1:
            dist.broadcast_object_list(verdict, src=0)
        self.report(metrics, checkpoint)
        if verdict[0] and (self.judge is None or self.judge.stop_on_collapse):
            self.on_end(state)  # the last milestone: no on_end follows the stop
            raise StopTrial(verdict[0])

    def on_end(self, state: TrainState) -> None:
        if self.judge is not None:
            self.judge.close(self.tracking_wait_s)


def trial_hooks(rank: int, world_size: int, dataset: Dataset, options: WorkerOptions, spec: TrialSpec) -> list[Hook]:
    config = options.config
    judge = None
    if rank == 0:
        child = None
        if options.run_id:
            from mlflow.tracking import MlflowClient

            child = MlflowClient(options.tracking_uri), options.run_id
        evaluator = trial_evaluator(config, dataset, spec)
        judge = Milestones(evaluator, config.eval.collapse_threshold, child, spec.stop_on_collapse)
        judge.train_keys = (*Milestones.train_keys, "samples_per_s", "samples_per_s_worker", "workers")
        judge.total_milestones = max(1, config.train.steps // config.train.checkpoint_every)
    return [TrialReporter(rank, world_size, judge, config.train.checkpoint_every, spec.tracking_wait_s)]


def trial_worker(loop_config: dict[str, Any], spec: TrialSpec, extra_hooks=()) -> None:
    """Runs in every Ray Train worker of a trial."""
    train_worker(loop_config, make_hooks=functools.partial(trial_hooks, spec=spec), extra_hooks=extra_hooks)


def run_trial_on_workers(params: dict[str, Any], spec: TrialSpec, options: SearchOptions) -> None:
    """The Tune trainable with `workers_per_trial` > 1: one GAN on a TorchTrainer's workers.

    One failure budget, `max_failures`: Ray Train restarts failed workers from the trial's last
    checkpoint up to that many times, and a Train run that has spent it ends the trial with its
    reason. Raising would make Tune start the trial again, with a fresh Ray Train budget each
    time: (1 + max_failures)^2 attempts of a trial that cannot train. Tune's own retries are left
    for a trial whose driver died (its node lost); the new driver resumes the same Train run."""
    from ray import tune
    from ray.train import TrainingFailedError
    from ray.tune.integration.ray_train import TuneReportCallback

    config = apply_overrides(spec.base, params)
    child = mlflow_child(spec, params, config)
    share = worker_resources(options)
    scaling = Scaling(options.workers_per_trial, share["CPU"], share["GPU"], max_failures=options.max_failures)
    trainers = Storage.from_uri(spec.storage_uri).child("tune", spec.name, "trainers")
    run_name = tune.get_context().get_trial_id()  # the same name again resumes the trial's Train run
    worker = worker_options(
        config, run_name, trainers.uri, run_id=child[1] if child else None, tracking_uri=spec.tracking_uri,
        tracking_wait_s=spec.tracking_wait_s, check_sync=False,
    )  # fmt: skip
    status = "FINISHED"
    try:
        run_trainer(
            worker,
            scaling,
            worker=functools.partial(trial_worker, spec=spec),
            hooks=spec.hooks,
            callbacks=[TuneReportCallback()],
        )
    except NonFiniteLossError as error:  # the workers ended normally; so does the trial, with its reason
        report_divergence(error)
    except TrainingFailedError as error:
        report_failure(error, 1 + options.max_failures, steps_trained(trainers, run_name) or 0)
        status = "FAILED"
    if child:
        child[0].set_terminated(child[1], status)


def report_failure(error: Exception, attempts: int, step: int) -> None:
    """End a trial whose Train run failed on its last attempt, with the workers' error as its
    reason and no objective (so the search's summary leaves it out, as it does a diverged trial)."""
    from ray import tune

    tune.report({"objective": float("nan"), "stop_reason": failure_reason(error, attempts), "step": step})


def failure_reason(error: Exception, attempts: int) -> str:
    """`failed after 3 attempts: RuntimeError: ...`; a controller's error (Ray Train counts those
    against a limit of their own) says nothing of attempts."""
    spent = f" after {attempts} attempt{'s' if attempts > 1 else ''}" if getattr(error, "worker_failures", None) else ""
    return f"failed{spent}: {first_cause(error)}"


def first_cause(error: Exception) -> str:
    """`Type: first line` of the lowest rank's error (or the controller's), without Ray's wrappers."""
    failures = getattr(error, "worker_failures", None)
    cause = failures[min(failures)] if failures else getattr(error, "controller_failure", error)
    cause = getattr(cause, "cause", None) or cause  # a RayTaskError carries the worker's own exception
    return f"{type(cause).__name__}: {first_line(cause)}"
