"""The pipeline's steps as Prefect tasks around the library functions of #3-#5.

Each task takes and returns plain, JSON-able values (config dicts, URIs, run ids) so that its
outcome can be recorded and handed to the next step or a later re-run. Every step that talks
to storage or MLflow retries transient faults; a retried `train` resumes from its last
checkpoint, and a retried `register` finds the version it already created.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gan_core.config import from_dict
from pipelines.flows.retries import TRANSIENT_RETRIES
from pipelines.settings import Settings

STEP = {"cache_policy": NO_CACHE, **TRANSIENT_RETRIES}


def _log(line: str) -> None:
    get_run_logger().info(line)


@task(name="search", **STEP)
def search(base: dict[str, Any], options: dict[str, Any], name: str) -> dict[str, Any]:
    from pipelines.tune import SPEC_FILE, SearchOptions, run_search

    settings = Settings.from_env()
    interrupted = (settings.home / "tune" / name / SPEC_FILE).is_file()  # a retry or a re-run continues it
    result = run_search(from_dict(base), SearchOptions(**options), name, settings, log=_log, resume=interrupted)
    return {
        "name": result.name,
        "best_config": result.best_config.to_dict(),
        "best_objective": result.best_objective,
        "best_params": result.best_params,
        "best_stop_reason": result.best_stop_reason,
        "trials": len(result.trials),
        "stopped_early": sum(1 for t in result.trials if t["milestones"] < options.get("milestones", 4)),
        "results_table": str(result.folder / "results.md"),
        "parent_run_id": result.parent_run_id,
    }


@task(name="check-cluster", **STEP)
def check_cluster(scaling: dict[str, Any]) -> None:
    """Refuse training's workers if the Ray cluster cannot hold them, before the search that
    precedes training spends its hours (the train step checks again itself)."""
    from pipelines.ray_train import Scaling
    from pipelines.train import ensure_room_for_workers

    ensure_room_for_workers(Scaling(**scaling), Settings.from_env(), _log)


@task(name="train", **STEP)
def train(config: dict[str, Any], run_name: str, scaling: dict[str, Any]) -> dict[str, Any]:
    from pipelines.ray_train import Scaling
    from pipelines.train import train_distributed

    # The evaluate step that follows runs the full protocol with intervals; here a point estimate suffices.
    settings = Settings.from_env()
    result = train_distributed(from_dict(config), run_name, Scaling(**scaling), settings, log=_log, bootstrap=0)
    return asdict(result)


@task(name="evaluate", **STEP)
def evaluate(model_uri: str, bootstrap: int) -> dict[str, Any]:
    from pipelines.evaluation import evaluate_source

    return evaluate_source(model_uri, Settings.from_env(), None, bootstrap, log=_log)


@task(name="register", **STEP)
def register(model_name: str, trained: dict[str, Any], report: dict[str, Any]) -> str:
    from pipelines import tracking
    from pipelines.registry import model_card
    from pipelines.train import register_generator

    client = tracking.client_for(Settings.from_env(), _log)
    run_id, run_name = trained["run_id"], trained["run_name"]
    # Training wrote the card with point estimates under the run's name: now the model's name and
    # the evaluate step's intervals. (The params hold the first training's train.steps.)
    config_flat = {**client.get_run(run_id).data.params, "train.steps": trained["steps"]}
    card = model_card(model_name, run_name, config_flat, trained["tags"], report, "samples/final.png")
    client.log_text(run_id, card, "model_card.md")
    return register_generator(client, model_name, trained["model_uri"], run_id, run_name, trained["tags"], report, _log)


@task(name="promote", **STEP)
def promote(model_name: str, version: str, margin: float, bootstrap: int) -> dict[str, Any]:
    from pipelines import tracking
    from pipelines.registry import promote as decide
    from pipelines.registry import record_decision_run

    settings = Settings.from_env()
    client = tracking.client_for(settings, _log)
    decision = decide(client, settings, model_name, version, margin, resamples=bootstrap, log=_log)
    if not decision.recorded:
        record_decision_run(client, tracking.experiment_id(client, settings), decision)
    return asdict(decision)
