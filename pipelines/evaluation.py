"""`ganpipe evaluate`: the full evaluation protocol on any generator, written as JSON and to MLflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.settings import Settings


def evaluate_source(
    source: str, settings: Settings, n_samples: int | None, bootstrap: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Fixed seeds, N samples, bootstrap intervals; `source` is a model URI, checkpoint or run folder."""
    from gan_core.metrics import Evaluator
    from pipelines.datasets import load_for
    from pipelines.tracking_server import wait_for_server

    if is_model_uri(source):  # the model comes from MLflow, and the evaluation goes back to it
        wait_for_server(settings.tracking_uri, settings.tracking_wait_s, log)
    generator, config, label = load_generator(source, settings)
    evaluator = Evaluator(load_for(config), config.eval, cache_dir=str(settings.home / "classifiers"), log=log)
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


def is_model_uri(source: str) -> bool:
    return source.startswith(("runs:/", "models:/")) or "://" in source


def load_generator(source: str, settings: Settings):
    """(generator, config, label) from an MLflow model URI, a checkpoint file or a run folder."""
    from gan_core.config import from_dict
    from gan_core.training import generator_from_checkpoint, load_checkpoint

    if is_model_uri(source):
        from mlflow.exceptions import MlflowException

        from pipelines.train import load_logged_generator

        try:
            generator, config = load_logged_generator(source, settings.tracking_uri)
        except MlflowException as error:  # a URI typed wrong, a model or alias that is not there
            raise LookupError(f"{source}: {str(error.message).strip().splitlines()[0]}") from None
        return generator, config, source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{source} is neither an MLflow model URI nor an existing checkpoint or run folder")
    ckpt = load_checkpoint(path) if path.is_file() else _newest_checkpoint_in(path)
    if ckpt is None:
        raise FileNotFoundError(
            f"{path} holds no checkpoint (expected checkpoints/step-N.pt of a local run, or state.pt or "
            "checkpoint_*/state.pt of a Ray run's storage folder)"
        )
    return generator_from_checkpoint(ckpt), from_dict(ckpt["config"]), f"{path} (step {ckpt['step']})"


def _newest_checkpoint_in(folder: Path) -> dict | None:
    """A local run's folder, a Ray run's storage folder (what `ganpipe train` prints after
    "checkpoints:") or one of its checkpoint folders."""
    from gan_core.outputs import latest_checkpoint
    from gan_core.training import load_checkpoint

    if (folder / "checkpoints").is_dir():
        return latest_checkpoint(folder / "checkpoints")
    if (folder / "state.pt").is_file():
        return load_checkpoint(folder / "state.pt")
    ray_checkpoints = sorted(folder.glob("checkpoint_*/state.pt"))  # named by time: the last is the newest
    return load_checkpoint(ray_checkpoints[-1]) if ray_checkpoints else None


def log_evaluation(settings: Settings, model_uri: str, report: dict) -> str:
    """One MLflow run per evaluation, tagged with the model it judged; returns its id."""
    from pipelines import tracking

    client = tracking.client_for(settings)
    run = client.create_run(
        tracking.experiment_id(client, settings),
        run_name="evaluate",
        tags={"ganpipe.kind": "evaluation", "ganpipe.model_uri": model_uri, **model_lineage(client, model_uri)},
    )
    flat = {}
    for name, values in report.items():
        flat.update({f"{name}_{k}" if k != "value" else name: v for k, v in values.items()})
    tracking.log_metrics(client, run.info.run_id, flat, 0)
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
