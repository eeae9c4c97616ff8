"""A trial: one GAN trained in the trial's own process, evaluated at milestones (milestones.py),
logged into a child of the search's MLflow run.

A trial whose process dies (a node lost, out of memory) starts again from its last checkpoint,
up to `max_failures` times (Tune's FailureConfig). A trial that diverges is not started again,
which would only diverge again: it ends with its reason (`diverged: ...`) and no objective.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gan_core.config import ExperimentConfig
from gan_core.metrics import Evaluator
from gan_core.training import Hook, NonFiniteLossError, fit, load_checkpoint
from pipelines.storage.datasets import load_for
from pipelines.train.reporter import CHECKPOINT_FILE
from pipelines.tune.milestones import Milestones, StopTrial
from pipelines.tune.options import TrialSpec
from pipelines.tune.space import apply_overrides


def run_trial(params: dict[str, Any], spec: TrialSpec) -> None:
    """The Tune trainable: one GAN, trained in this process, evaluated at milestones."""
    from ray import tune

    config = apply_overrides(spec.base, params)
    dataset = load_for(config)
    child = mlflow_child(spec, params, config)
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = load_checkpoint(Path(folder) / CHECKPOINT_FILE)
    # Under PBT a collapsing trial is better exploited (it copies a healthy one) than stopped.
    hook = Milestones(
        trial_evaluator(config, dataset, spec), config.eval.collapse_threshold, child, spec.stop_on_collapse
    )
    hook.milestone = (resume or {}).get("step", 0) // config.train.checkpoint_every
    hook.total_milestones = max(1, config.train.steps // config.train.checkpoint_every)
    hooks: list[Hook] = [hook, *(h for make in spec.hooks for h in make(0))]
    try:
        with contextlib.suppress(StopTrial):  # reported with its reason; returning ends the trial
            fit(config, dataset, hooks, resume_from=resume)
    except NonFiniteLossError as error:
        report_divergence(error)
    hook.close(spec.tracking_wait_s)
    if child:
        child[0].set_terminated(child[1])


def report_divergence(error: NonFiniteLossError) -> None:
    """End a diverged trial with its reason. Raising would fail the trial, and Tune would start it
    again from its last checkpoint (`max_failures`) only to diverge again. Its objective is NaN,
    which ASHA's cut-offs and the search's summary leave out."""
    from ray import tune

    reason = f"diverged: {str(error).split(';')[0]}"  # the step and the metrics, not the advice
    tune.report({"objective": float("nan"), "stop_reason": reason, "step": getattr(error, "step", 0)})


def trial_evaluator(config: ExperimentConfig, dataset, spec: TrialSpec) -> Evaluator:
    eval_config = type(config.eval)(**{**asdict(config.eval), "n_samples": spec.eval_samples})
    return Evaluator(dataset, eval_config, cache_dir=spec.cache_dir)


def mlflow_child(spec: TrialSpec, params: dict[str, Any], config: ExperimentConfig):
    """(client, run id) of this trial's child run of the search's run, found again after a
    restart; None when the search logs nowhere."""
    if not spec.parent_run_id:
        return None
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient
    from ray import tune

    client = MlflowClient(spec.tracking_uri)
    trial_id, parent = tune.get_context().get_trial_id(), spec.parent_run_id
    found = client.search_runs(
        [spec.experiment_id],
        filter_string=f"tags.`ganpipe.trial_id` = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent}'",
        max_results=1,
    )
    if found:
        return client, found[0].info.run_id
    tags = {"mlflow.parentRunId": parent, "ganpipe.trial_id": trial_id, "ganpipe.search": spec.name}
    run = client.create_run(spec.experiment_id, run_name=trial_id, tags=tags)
    searched = {f"searched.{k}": v for k, v in params.items()}
    client.log_batch(
        run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in {**config.flat(), **searched}.items()]
    )
    return client, run.info.run_id
