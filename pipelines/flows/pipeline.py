"""`gan-pipeline`: prepare -> search -> train the best config longer -> evaluate -> register -> promote.

Every finished step is recorded (see stages.py), so a run that was interrupted, or a repeat
on unchanged data, picks up where the last one stopped instead of redoing work. With
`search_samples=0` the search is skipped and the best configuration of the latest search
(or the preset) is trained: that is the nightly deployment; the weekly one searches.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from gan_core.config import ExperimentConfig, load_config, preset_path
from pipelines.flows import steps
from pipelines.flows.prepare import prepare
from pipelines.flows.progress import StepLines
from pipelines.flows.report import pipeline_report
from pipelines.flows.stages import Stages
from pipelines.runtime.logs import log_requested_stops_in_one_line, skip_ray_internal_lines
from pipelines.settings import Settings
from pipelines.storage.location import Storage
from pipelines.tracking.runs import run_page
from pipelines.train.driver import TrainResult
from pipelines.train.scaling import Scaling
from pipelines.tune.options import SearchOptions
from pipelines.tune.space import apply_overrides

BEST_CONFIG = "best.yaml"  # pipelines/NAME/best.yaml: the latest search's winner, read by runs that skip the search


@flow(name="gan-pipeline", log_prints=True)
def gan_pipeline(
    name: str = "digits",
    preset: str = "digits-cgan",
    source: str = "digits",
    source_root: str = "",
    overrides: list[str] | None = None,
    search_space: str = "digits",
    search_samples: int = 4,
    search_steps: int = 600,
    search_scheduler: str = "asha",
    train_steps: int | None = None,
    workers: int = 1,
    cpus_per_worker: float | None = None,  # None: a local cluster's CPUs shared among the workers, else 1
    gpus_per_worker: float = 0.0,
    model_name: str | None = None,
    margin: float = 0.0,
    bootstrap: int = 100,
    n_train: int = 100_000,
) -> dict[str, Any]:
    log_requested_stops_in_one_line()  # a cancelled run's stop: one line, not three tracebacks
    skip_ray_internal_lines()  # before the steps import Ray
    logger = get_run_logger()
    settings = Settings.from_env()
    storage = Storage.from_uri(settings.storage_uri)
    model_name = model_name or f"{name}-generator"
    lines = StepLines(logger.info)

    data = prepare(source, source_root, n_train)
    lines.done("prepare", f"{data.name} version {data.version}, {'already stored' if data.reused else 'stored'}")
    stages = Stages(storage, name, data.version)
    base = load_config(preset_path(preset), [*(overrides or []), *data.overrides()])

    scaling = Scaling(workers, cpus_per_worker, gpus_per_worker)
    searched = None
    if search_samples > 0:
        search_base = apply_overrides(base, {"train.steps": search_steps})
        options = _search_options(search_space, search_samples, search_scheduler)
        # Another preset, override, space or budget is another search (it was reused by name alone).
        search_key = _search_key(search_base, options)
        if (record := stages.finished(f"search-{search_key}")) is not None:
            searched = steps.SearchSummary.from_dict(record)
            lines.done("search", f"as recorded, {_searched(searched)}")
        else:
            steps.check_cluster(scaling)  # training's workers must fit: said now, not after the search
            searched = steps.search(search_base, options, f"{name}-{data.version}-{search_key}")
            stages.record(f"search-{search_key}", searched.to_dict())
            lines.done("search", _searched(searched))
        storage.child("pipelines", name).write_bytes(BEST_CONFIG, yaml.safe_dump(searched.best_params).encode())
    # Without a search this run, training takes the latest one's best values: the report says which.
    latest_search_values = None if searched else _stored_best(storage.child("pipelines", name))
    if not searched:
        taken = "the latest search's values" if latest_search_values else "the preset's values"
        lines.done("search", f"skipped (search_samples=0), training takes {taken}")
    best = searched.best_params if searched else latest_search_values
    config = _training_config(base, best, train_steps)

    key = config.hash()[:8]  # a new config, like new data, is new work; the same one is reused
    run_name = f"{name}-{data.version}-{key}"
    if (record := stages.finished(f"train-{key}")) is not None:
        trained = TrainResult.from_dict(record)
        lines.done("train", f"as recorded, run {run_name}")
    else:
        trained = steps.train(config, run_name, scaling)
        stages.record(f"train-{key}", trained.to_dict())
        lines.done("train", f"run {run_name}, {trained.steps} steps")
    evaluation = stages.finished(f"evaluate-{key}") or stages.record(
        f"evaluate-{key}", steps.evaluate(trained.model_uri, bootstrap)
    )
    lines.done("evaluate", _headline(evaluation["metrics"]))
    version = (stages.finished(f"register-{key}") or stages.record(
        f"register-{key}", {"version": steps.register(model_name, trained, evaluation["metrics"])}
    ))["version"]  # fmt: skip
    lines.done("register", f"{model_name} version {version}")
    decision = steps.promote(model_name, version, margin, bootstrap)
    lines.done("promote", "now the champion" if decision.promoted else decision.reason)

    summary = {
        "name": name,
        "dataset": {"name": data.name, "version": data.version, "uri": data.uri, "reused": data.reused},
        "run_name": run_name,
        "run_id": trained.run_id,
        "model_uri": trained.model_uri,
        "model_name": model_name,
        "version": version,
        "metrics": evaluation["metrics"],
        "decision": asdict(decision),
        "search": searched.to_dict() if searched else None,
        "latest_search_values": latest_search_values or None,
        "late_collapse": trained.late_collapse,
    }
    summary["outputs"] = _keep_outputs(settings, summary)
    markdown = pipeline_report(summary)
    Path(summary["outputs"]["report"]).write_text(markdown)
    create_markdown_artifact(markdown, key=_artifact_key(name), description=f"gan-pipeline {name}")
    logger.info("pipeline %s finished: %s v%s, %s", name, model_name, version, decision.reason)
    return summary


def _searched(search: steps.SearchSummary) -> str:
    return f"{search.trials} trials, {search.stopped_early} stopped early, best objective {search.best_objective:.4g}"


HEADLINE_METRICS = ("frechet_distance", "translation_accuracy", "modes")  # what each kind of data ranks by


def _headline(metrics: dict[str, dict[str, float]]) -> str:
    """The metric a generator of this data is ranked by, with its interval: `frechet_distance 3.1 [2.9, 3.4]`."""
    name = next((m for m in HEADLINE_METRICS if m in metrics), next(iter(metrics)))
    value = metrics[name]
    interval = f" [{value['ci_low']:.3g}, {value['ci_high']:.3g}]" if "ci_low" in value else ""
    return f"{name} {value['value']:.4g}{interval}"


def _search_key(search_base: ExperimentConfig, options: SearchOptions) -> str:
    """The options the search was asked with (not the defaults they filled in) and its base config."""
    asked = {k: getattr(options, k) for k in ("space", "num_samples", "scheduler", "max_concurrent", "eval_samples")}
    text = json.dumps([search_base.to_dict(), asked], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _search_options(space: str, samples: int, scheduler: str) -> SearchOptions:
    # Two trials at a time suit the embedded default's two cores; a cluster raises it with the deployment.
    return SearchOptions(space, samples, scheduler, max_concurrent=2, eval_samples=1000)


def _training_config(base: ExperimentConfig, best: dict[str, Any], train_steps: int | None) -> ExperimentConfig:
    """The base config with the search values the caller chose, and the step budget."""
    config = apply_overrides(base, best)
    return apply_overrides(config, {"train.steps": train_steps}) if train_steps else config


def _stored_best(home: Storage) -> dict[str, Any]:
    """The best values of the latest search of this pipeline (none: {})."""
    return (yaml.safe_load(home.read_bytes(BEST_CONFIG)) or {}) if home.exists(BEST_CONFIG) else {}


def _keep_outputs(settings: Settings, summary: dict[str, Any]) -> dict[str, str]:
    """Copy the pictures next to the report in GANPIPE_HOME/pipelines/NAME, where a person looks first."""
    import mlflow

    folder = settings.home / "pipelines" / summary["name"]
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {"report": str(folder / "report.md")}
    for artifact in ("samples/final.png", "samples/training.gif"):
        with tempfile.TemporaryDirectory() as scratch:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=summary["run_id"], artifact_path=artifact, dst_path=scratch,
                    tracking_uri=settings.tracking_uri,
                )  # fmt: skip
            except Exception as error:  # noqa: BLE001 - a missing picture must not fail a finished pipeline
                get_run_logger().warning("could not fetch %s: %s", artifact, error)
                continue
            target = folder / Path(artifact).name
            target.write_bytes(Path(local).read_bytes())
            outputs[Path(artifact).stem] = str(target)
    outputs["model"] = f"models:/{summary['model_name']}/{summary['version']}"
    if summary["decision"]["promoted"] or summary["decision"]["already_champion"]:
        outputs["champion"] = f"models:/{summary['model_name']}@champion"
    experiment = mlflow.MlflowClient(settings.tracking_uri).get_run(summary["run_id"]).info.experiment_id
    outputs["mlflow run"] = run_page(settings.tracking_uri, experiment, summary["run_id"])
    return outputs


def _artifact_key(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return f"gan-pipeline-{cleaned}"[:100]
