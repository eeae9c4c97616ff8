"""The pipeline's steps as Prefect tasks around the layers below.

What a task takes and returns is typed (a config, `SearchOptions`, `Scaling`, `TrainResult`,
`SearchSummary`, `Decision`), and each has `to_dict`/`from_dict` (or is a plain dict), so that
a step's outcome can be recorded as JSON (stages.py) and handed to the next step or to a
later re-run. Every step that talks to storage or MLflow retries transient faults; a retried
`train` resumes from its last checkpoint, and a retried `register` finds the version it
already created.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gan_core.config import ExperimentConfig
from pipelines.evaluate.report import evaluate_source
from pipelines.flows.retries import TRANSIENT_RETRIES
from pipelines.registry.promotion import Decision, record_decision_run
from pipelines.registry.promotion import promote as decide
from pipelines.registry.versions import model_card, register_generator
from pipelines.settings import Settings
from pipelines.tracking import runs
from pipelines.train.driver import TrainResult, train_distributed
from pipelines.train.scaling import Scaling, ensure_room_for_workers
from pipelines.tune.options import SearchOptions
from pipelines.tune.search import SPEC_FILE, run_search

STEP = {"cache_policy": NO_CACHE, **TRANSIENT_RETRIES}


@dataclass(frozen=True)
class SearchSummary:
    name: str
    best_config: dict[str, Any]
    best_objective: float
    best_params: dict[str, Any]
    best_stop_reason: str  # set when every trial was stopped: the best one's reason
    trials: int
    stopped_early: int
    results_table: str  # results.md
    parent_run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchSummary:
        return cls(**values)


def _log(line: str) -> None:
    get_run_logger().info(line)


@task(name="search", **STEP)
def search(base: ExperimentConfig, options: SearchOptions, name: str) -> SearchSummary:
    settings = Settings.from_env()
    interrupted = (settings.home / "tune" / name / SPEC_FILE).is_file()  # a retry or a re-run continues it
    result = run_search(base, options, name, settings, log=_log, resume=interrupted)
    return SearchSummary(
        name=result.name,
        best_config=result.best_config.to_dict(),
        best_objective=result.best_objective,
        best_params=result.best_params,
        best_stop_reason=result.best_stop_reason,
        trials=len(result.trials),
        stopped_early=sum(1 for t in result.trials if t["milestones"] < options.milestones),
        results_table=str(result.folder / "results.md"),
        parent_run_id=result.parent_run_id,
    )


@task(name="check-cluster", **STEP)
def check_cluster(scaling: Scaling) -> None:
    """Refuse training's workers if the Ray cluster cannot hold them, before the search that
    precedes training spends its hours (the train step checks again itself)."""
    ensure_room_for_workers(scaling, Settings.from_env(), _log)


@task(name="train", **STEP)
def train(config: ExperimentConfig, run_name: str, scaling: Scaling) -> TrainResult:
    # The evaluate step that follows runs the full protocol with intervals; here a point estimate suffices.
    return train_distributed(config, run_name, scaling, Settings.from_env(), log=_log, bootstrap=0)


@task(name="evaluate", **STEP)
def evaluate(model_uri: str, bootstrap: int) -> dict[str, Any]:
    return evaluate_source(model_uri, Settings.from_env(), None, bootstrap, log=_log)


@task(name="register", **STEP)
def register(model_name: str, trained: TrainResult, report: dict[str, Any]) -> str:
    client = runs.client_for(Settings.from_env(), _log)
    run_id, run_name, tags = trained.run_id, trained.run_name, trained.tags or {}
    # Training wrote the card with point estimates under the run's name: now the model's name and
    # the evaluate step's intervals. (The params hold the first training's train.steps.)
    config_flat = {**client.get_run(run_id).data.params, "train.steps": trained.steps}
    card = model_card(model_name, run_name, config_flat, tags, report, "samples/final.png")
    client.log_text(run_id, card, "model_card.md")
    return register_generator(client, model_name, trained.model_uri, run_id, run_name, tags, report, _log, card)


@task(name="promote", **STEP)
def promote(model_name: str, version: str, margin: float, bootstrap: int) -> Decision:
    settings = Settings.from_env()
    client = runs.client_for(settings, _log)
    decision = decide(client, settings, model_name, version, margin, resamples=bootstrap, log=_log)
    if not decision.recorded:
        record_decision_run(client, runs.experiment_id(client, settings), decision)
    return decision
