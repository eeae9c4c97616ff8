"""A trial's milestones: at each checkpoint, evaluate with the protocol, report to Tune with the
checkpoint, log to the trial's MLflow run, and stop the trial if its modes collapsed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gan_core.metrics import Evaluator, coverage_from_metrics, flatten_report, objective_of
from gan_core.training import Hook, TrainState, save_checkpoint
from pipelines.tracking.sender import TrackingQueue, quick_failing_http
from pipelines.train.reporter import CHECKPOINT_FILE
from pipelines.train.worker import StopTraining

MILESTONE_WAIT_S = 30.0  # the longest a milestone waits for its metrics to reach MLflow


class StopTrial(StopTraining):
    """Raised inside a trial to end it early (mode collapse)."""


class Milestones(Hook):
    """At each checkpoint: evaluate, report to Tune with the checkpoint, log to MLflow."""

    train_keys: tuple[str, ...] = ("d_loss", "g_loss", "d_real", "d_fake")  # training metrics reported too

    def __init__(
        self,
        evaluator: Evaluator,
        threshold: float,
        mlflow_child: tuple[Any, str] | None,
        stop_on_collapse: bool = True,
    ) -> None:
        self.evaluator, self.threshold = evaluator, threshold
        self.stop_on_collapse = stop_on_collapse
        # The trial's MLflow child run, fed in the background: an outage does not stop the trial.
        self.tracking = None
        if mlflow_child:
            quick_failing_http()
            client, run_id = mlflow_child
            self.tracking = TrackingQueue(client, run_id, str(client.tracking_uri))
        self.milestone = 0
        self.total_milestones = 1
        self.best_coverage = 0.0
        self._train_metrics: dict[str, float] = {}

    def on_start(self, state: TrainState) -> None:
        # PBT restores a trial from another trial's checkpoint: count those exploits.
        from ray import tune

        me = tune.get_context().get_trial_id()
        origin = state.extra.get("trial_id")
        state.extra["exploits"] = int(state.extra.get("exploits", 0)) + int(origin is not None and origin != me)
        state.extra["trial_id"] = me

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        self._train_metrics = {k: v for k, v in metrics.items() if k in self.train_keys}

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], state: TrainState) -> None:
        from ray import tune

        metrics = self.evaluate(step, state)
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(checkpoint, Path(folder) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        if metrics["stop_reason"] and self.stop_on_collapse:
            raise StopTrial(metrics["stop_reason"])

    def evaluate(self, step: int, state: TrainState) -> dict[str, Any]:
        """The milestone's metrics (objective, protocol metrics, stop reason), logged to MLflow."""
        self.milestone += 1
        report = flatten_report(self.evaluator.evaluate(state.sampler))
        dataset = self.evaluator.dataset
        metrics = {k: v for k, v in report.items() if not k.endswith(("_real", "_matched"))}
        metrics.update(self._train_metrics)
        metrics["objective"] = objective_of(metrics, dataset)
        metrics["coverage"] = coverage_from_metrics(metrics, dataset)
        metrics["step"] = step
        metrics["exploits"] = state.extra.get("exploits", 0)
        metrics["stop_reason"] = self.collapse_reason(metrics["coverage"])
        if self.tracking is not None:
            self.tracking.log_metrics(step, {k: v for k, v in metrics.items() if isinstance(v, int | float)})
            # Tune may end the trial at the report that follows (ASHA): let this milestone arrive
            # first, unless the server is down.
            self.tracking.flush(MILESTONE_WAIT_S)
        return metrics

    def close(self, wait_s: float) -> None:
        """The end of the trial: wait up to `wait_s` for its metrics to reach MLflow."""
        if self.tracking is not None:
            self.tracking.close(wait_s)

    def collapse_reason(self, coverage: float) -> str:
        """Collapse: coverage fell below the threshold after reaching it, or never reached it by
        half-way (a GAN that has not found its modes by then rarely does)."""
        reached = self.best_coverage >= self.threshold
        self.best_coverage = max(self.best_coverage, coverage)
        if coverage >= self.threshold:
            return ""
        if reached:
            return (
                f"mode collapse: coverage fell to {coverage:.2f} (< {self.threshold:.2f}) from {self.best_coverage:.2f}"
            )
        if self.milestone >= max(2, self.total_milestones // 2):
            return (
                f"mode collapse: coverage {coverage:.2f} still below {self.threshold:.2f} at milestone {self.milestone}"
            )
        return ""
