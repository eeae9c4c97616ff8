"""`ganpipe train` on Ray: check storage, open the MLflow run, train, evaluate, log the generator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gan_core.config import ExperimentConfig
from gan_core.data import Dataset, load_dataset
from gan_core.metrics import Evaluator, flatten_report
from gan_core.outputs import sample_picture
from gan_core.training import generator_from_checkpoint
from pipelines.ray_train import Scaling, load_result_checkpoint, run_trainer
from pipelines.serving import log_generator_model
from pipelines.settings import Settings
from pipelines.storage import Storage


@dataclass
class TrainResult:
    run_name: str
    run_id: str
    resumed: bool
    steps: int
    metrics: dict[str, dict[str, float]]
    checkpoint_uri: str
    model_uri: str
    registered_version: str | None = None


def dataset_version(dataset: Dataset) -> str:
    """Content hash of the training data (the prepare step's dataset version, until it exists)."""
    import hashlib

    digest = hashlib.sha256(dataset.train_x.numpy().tobytes())
    if dataset.train_y is not None:
        digest.update(dataset.train_y.numpy().tobytes())
    return digest.hexdigest()[:16]


def train_distributed(
    config: ExperimentConfig,
    run_name: str,
    scaling: Scaling,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
    crash: dict[str, Any] | None = None,
    register_as: str | None = None,
) -> TrainResult:
    from pipelines import tracking
    from pipelines.ray_cluster import ensure_ray

    settings = settings or Settings.from_env()
    storage = Storage.from_uri(settings.storage_uri)
    storage.check()  # fail fast on a missing bucket, bad credentials or an unreachable endpoint
    checkpoints = storage.child("checkpoints")

    dataset = load_dataset(config.data.name, config.data.root, config.data.n_train, config.data.seed)
    client = tracking.client_for(settings)
    tags = {
        "dataset.name": dataset.name,
        "dataset.version": dataset_version(dataset),
        "config.hash": config.hash(),
        "code.version": tracking.code_version(),
    }
    run_id, resumed = tracking.find_or_create_run(client, settings, run_name, config.flat(), tags)
    log(f"MLflow run {run_id} ({'resumed' if resumed else 'new'}) at {settings.tracking_uri}")

    ensure_ray(settings.ray_address, log)
    log(f"training {run_name} on {scaling.workers} Ray worker(s); checkpoints in {checkpoints.uri}/{run_name}")
    try:
        result = run_trainer(config, run_name, checkpoints.uri, scaling, run_id, settings.tracking_uri, crash)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    checkpoint = load_result_checkpoint(result)

    generator = generator_from_checkpoint(checkpoint)
    evaluator = Evaluator(dataset, config.eval, cache_dir=str(settings.home / "classifiers"), log=log)
    model_uri, version, report = publish_generator(
        client, settings, run_id, run_name, generator, config, evaluator, tags, checkpoint["step"], register_as, log
    )
    client.set_terminated(run_id, status="FINISHED")
    checkpoint_uri = f"{checkpoints.uri}/{run_name}"
    return TrainResult(run_name, run_id, resumed, int(checkpoint["step"]), report, checkpoint_uri, model_uri, version)


def publish_generator(client, settings, run_id, run_name, generator, config, evaluator, tags, step, register_as, log):
    """Evaluate (with bootstrap intervals), log samples, the model and its card; register if asked."""
    import mlflow

    from pipelines import tracking
    from pipelines.registry import model_card, register_version

    dataset = evaluator.dataset
    report = evaluator.evaluate(generator, bootstrap=100)
    tracking.log_metrics(client, run_id, {f"eval/{k}": v for k, v in flatten_report(report).items()}, step)
    picture = sample_picture(generator, dataset, config.eval.seed, run_name)
    tracking.log_image(client, run_id, picture, "samples/final.png")
    card = model_card(register_as or run_name, run_name, config.flat(), tags, report, "samples/final.png")
    client.log_text(run_id, card, "model_card.md")
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        model_uri = log_generator_model(generator, config).model_uri
    version = None
    if register_as:
        lineage = {**tags, "training.run_id": run_id, "training.run_name": run_name}
        lineage.update({f"metric.{k}": f"{v['value']:.6g}" for k, v in report.items()})
        version = register_version(client, register_as, model_uri, run_id, lineage)
        log(f"registered {register_as} version {version} (alias challenger)")
    return model_uri, version, report


def load_logged_generator(model_uri: str, tracking_uri: str) -> tuple[torch.nn.Module, ExperimentConfig]:
    """A generator logged by `ganpipe train`, and the config it was trained with."""
    import mlflow

    from pipelines.serving import load_served_generator

    mlflow.set_tracking_uri(tracking_uri)
    return load_served_generator(model_uri)
