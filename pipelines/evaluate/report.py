"""`ganpipe evaluate`: the full evaluation protocol on any generator, written as JSON and to MLflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gan_core.metrics import Evaluator
from pipelines.evaluate.sources import is_model_uri, load_generator
from pipelines.settings import Settings
from pipelines.storage.datasets import load_for
from pipelines.tracking import runs
from pipelines.tracking.server import wait_for_server


def evaluate_source(
    source: str, settings: Settings, n_samples: int | None, bootstrap: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Fixed seeds, N samples, bootstrap intervals; `source` is a model URI, checkpoint or run folder."""

    if is_model_uri(source):  # the model comes from MLflow, and the evaluation goes back to it
        wait_for_server(settings.tracking_uri, settings.tracking_wait_s, log)
    generator, config, label = load_generator(source, settings)
    evaluator = Evaluator(load_for(config), config.eval, cache_dir=settings.classifier_cache, log=log)
    report = evaluator.evaluate(generator, n_samples, bootstrap=bootstrap)
    summary = {
        "source": label,
        "seed": config.eval.seed,
        "n_samples": n_samples or evaluator.n_samples,
        "real_samples": evaluator.real_samples,  # held-out data behind each metric's "real" (and "matched")
        "bootstrap": bootstrap,
        "metrics": report,
    }
    if is_model_uri(source):
        summary["mlflow_run_id"] = log_evaluation(settings, source, report)
    return summary


def log_evaluation(settings: Settings, model_uri: str, report: dict) -> str:
    """One MLflow run per evaluation, tagged with the model it judged; returns its id."""
    client = runs.client_for(settings)
    run = client.create_run(
        runs.experiment_id(client, settings),
        run_name="evaluate",
        tags={"ganpipe.kind": "evaluation", "ganpipe.model_uri": model_uri, **model_lineage(client, model_uri)},
    )
    runs.log_report(client, run.info.run_id, report, 0)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def model_lineage(client, model_uri: str) -> dict[str, str]:
    """Tags naming what `model_uri` pointed at when it was evaluated: an alias moves (a promotion,
    a rollback), the version and training run it resolved to do not."""
    from mlflow.exceptions import MlflowException

    if model_uri.startswith("runs:/"):
        return {"ganpipe.model_run_id": model_uri.removeprefix("runs:/").split("/")[0]}
    if not model_uri.startswith("models:/"):
        return {}
    body = model_uri.removeprefix("models:/")
    try:
        if "@" in body:
            version = client.get_model_version_by_alias(*body.split("@", 1))
        elif "/" in body:
            version = client.get_model_version(*body.split("/", 1))
        else:  # a logged model, models:/m-<id> (what `ganpipe train` prints as its model URI)
            return {"ganpipe.model_id": body, "ganpipe.model_run_id": client.get_logged_model(body).source_run_id or ""}
    except MlflowException:  # it loaded a moment ago; if it is gone now, say nothing of it
        return {}
    return {
        "ganpipe.model_name": version.name,
        "ganpipe.model_version": str(version.version),
        "ganpipe.model_run_id": version.run_id or "",
    }
