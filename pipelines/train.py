"""`ganpipe train` on Ray: check storage, open the MLflow run, train, evaluate, log the generator."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gan_core.config import ExperimentConfig
from gan_core.data import Dataset, load_dataset
from gan_core.metrics import Evaluator, flatten_report, generate
from gan_core.pictures import render_samples
from gan_core.training import generator_from_checkpoint
from pipelines.ray_train import Scaling, load_result_checkpoint, run_trainer
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
) -> TrainResult:
    import mlflow

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
    report = evaluator.evaluate(generator)
    tracking.log_metrics(
        client, run_id, {f"eval/{k}": v for k, v in flatten_report(report).items()}, checkpoint["step"]
    )
    samples, _ = generate(generator, 2500 if dataset.kind == "points" else 64, config.eval.seed)
    tracking.log_image(
        client, run_id, render_samples(samples, dataset.modes, dataset.sigma, run_name), "samples/final.png"
    )

    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        model_info = log_generator(generator, config)
    client.set_terminated(run_id, status="FINISHED")
    return TrainResult(
        run_name,
        run_id,
        resumed,
        int(checkpoint["step"]),
        report,
        f"{checkpoints.uri}/{run_name}",
        model_info.model_uri,
    )


def log_generator(generator: torch.nn.Module, config: ExperimentConfig):
    """The (EMA) generator as an MLflow PyTorch model, from CPU, with signature and input example."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    generator = generator.cpu().eval()
    latent = np.random.default_rng(0).standard_normal((4, generator.latent_dim)).astype(np.float32)
    with torch.no_grad():
        labels = torch.arange(4) % generator.num_classes if generator.num_classes else None
        output = generator(torch.from_numpy(latent), labels).numpy()
    with tempfile.TemporaryDirectory():
        return mlflow.pytorch.log_model(
            generator,
            name="generator",
            serialization_format="pickle",
            signature=infer_signature(latent, output),
            input_example=latent,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
            metadata={"ganpipe_config": json.dumps(config.to_dict())},  # what `ganpipe evaluate` rebuilds
        )


def load_logged_generator(model_uri: str, tracking_uri: str) -> tuple[torch.nn.Module, ExperimentConfig]:
    """A generator logged by `ganpipe train`, and the config it was trained with."""
    import mlflow
    import mlflow.pytorch

    from gan_core.config import from_dict

    mlflow.set_tracking_uri(tracking_uri)
    info = mlflow.models.get_model_info(model_uri)
    saved = (info.metadata or {}).get("ganpipe_config")
    if saved is None:
        raise ValueError(f"{model_uri} was not logged by ganpipe (its metadata holds no ganpipe_config)")
    return mlflow.pytorch.load_model(model_uri, map_location="cpu").eval(), from_dict(json.loads(saved))
