"""`ganpipe train` on Ray: check storage, open the MLflow run, train, evaluate, log the generator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gan_core.config import ExperimentConfig
from gan_core.data import Dataset
from gan_core.data.prepared import dataset_version
from gan_core.metrics import Evaluator, flatten_report
from gan_core.outputs import sample_picture
from gan_core.training import TrainingStopped, generator_from_checkpoint
from gan_core.training.state import check_trainable
from pipelines.datasets import load_for
from pipelines.ray_train import (
    FRAMES,
    TRACKING_BACKLOG,
    Scaling,
    load_result_checkpoint,
    run_trainer,
    steps_trained,
)
from pipelines.serving import log_generator_model
from pipelines.settings import Settings
from pipelines.storage import Storage
from pipelines.tracking_server import without_credentials

FEWER_WORKERS = "Ask for fewer --workers, or a smaller --cpus-per-worker or --gpus-per-worker"


def ensure_room_for_workers(scaling: Scaling, settings: Settings, log: Callable[[str], None] = print) -> Scaling:
    """Connect to Ray, decide the CPUs per worker if they were not given, and refuse workers a
    fixed cluster cannot hold (Ray would wait for ever). Returns the scaling to train with."""
    from pipelines.cluster_room import check_room
    from pipelines.ray_cluster import ensure_ray, local_cluster_cpus

    ensure_ray(settings.ray_address, log, settings.ray_wait_s)
    local_cpus = local_cluster_cpus()
    sized = scaling.sized_for(local_cpus)
    if scaling.cpus_per_worker is None and local_cpus:
        log(f"each worker reserves {sized.cpus_per_worker:g} of the local cluster's {local_cpus:g} CPUs")
    check_room(sized.workers, sized.per_worker(), "worker", FEWER_WORKERS, log)
    return sized


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
    tags: dict[str, str] | None = None  # lineage: dataset version, config hash, code version


def train_distributed(
    config: ExperimentConfig,
    run_name: str,
    scaling: Scaling,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
    crash: dict[str, Any] | None = None,
    register_as: str | None = None,
    bootstrap: int = 100,
) -> TrainResult:
    from pipelines import tracking
    from pipelines.run_lease import holding_run

    settings = settings or Settings.from_env()
    storage = Storage.from_uri(settings.storage_uri)
    storage.check(log)  # a missing bucket or bad credentials fail here; a silent endpoint is waited for
    checkpoints = storage.child("checkpoints")

    with holding_run(checkpoints.child(run_name), f"run {run_name}", log):  # no second training of this run meanwhile
        dataset = load_for(config)
        check_trainable(config, dataset, scaling.workers, trains_here=False)  # before Ray and MLflow
        client = tracking.client_for(settings, log)  # waits for the MLflow server if it does not answer
        tracking.check_same_config(client, settings, run_name, config.flat())  # a resume must not change it
        check_steps_not_fewer(config, checkpoints, run_name)
        scaling = ensure_room_for_workers(scaling, settings, log)  # before an MLflow run is opened for nothing
        return _train_and_publish(
            config, run_name, scaling, settings, checkpoints, dataset, client, log, crash, register_as, bootstrap
        )


def check_steps_not_fewer(config: ExperimentConfig, checkpoints: Storage, run_name: str) -> None:
    """Refuse a train.steps below what the run has trained: Ray would resume its newest checkpoint,
    train nothing, and log and register that generator once more as if it were new."""
    from gan_core.config import ConfigError

    trained = steps_trained(checkpoints, run_name)
    if trained is not None and trained > config.train.steps:
        raise ConfigError(
            f"train.steps={config.train.steps} is not allowed: run {run_name} has trained {trained} steps already "
            f"(checkpoints in {checkpoints.uri}/{run_name}); ask for at least as many to continue it, "
            "or use another --name"
        )


def _train_and_publish(
    config: ExperimentConfig,
    run_name: str,
    scaling: Scaling,
    settings: Settings,
    checkpoints: Storage,
    dataset: Dataset,
    client: Any,
    log: Callable[[str], None],
    crash: dict[str, Any] | None,
    register_as: str | None,
    bootstrap: int,
) -> TrainResult:
    """Open (or resume) the MLflow run, train on Ray, evaluate and log the generator; the run is
    marked KILLED on a stop and FAILED on any other error."""
    from pipelines import tracking

    tags = {
        "dataset.name": dataset.name,
        "dataset.version": dataset_version(dataset),
        "config.hash": config.hash(),
        "code.version": tracking.code_version(),
    }
    run_id, resumed = tracking.find_or_create_run(client, settings, run_name, config.flat(), tags)
    log(f"MLflow run {run_id} ({'resumed' if resumed else 'new'}) at {without_credentials(settings.tracking_uri)}")

    log(f"training {run_name} on {scaling.workers} Ray worker(s); checkpoints in {checkpoints.uri}/{run_name}")
    try:
        result = run_trainer(
            config,
            run_name,
            checkpoints.uri,
            scaling,
            run_id,
            settings.tracking_uri,
            crash,
            extra={"tracking_wait_s": settings.tracking_wait_s},
            graceful_stop=True,
        )
        checkpoint = load_result_checkpoint(result)
        client = tracking.client_for(settings, log)  # the server may have gone away while training ran
        resend_backlog(client, run_id, checkpoint, log)

        generator = generator_from_checkpoint(checkpoint)
        evaluator = Evaluator(dataset, config.eval, cache_dir=str(settings.home / "classifiers"), log=log)
        model_uri, version, report = publish_generator(
            client,
            settings,
            run_id,
            run_name,
            generator,
            config,
            evaluator,
            tags,
            checkpoint["step"],
            register_as,
            log,
            bootstrap,
        )
    # Ctrl-C or SIGTERM: during training, or after it (Ray's SIGTERM handler in the driver calls sys.exit)
    except (TrainingStopped, KeyboardInterrupt, SystemExit):
        tracking.mark_ended(client, run_id, "KILLED", log)
        log(f"checkpoints: {checkpoints.uri}/{run_name}; run the same command to resume")
        raise
    except Exception:
        tracking.mark_ended(client, run_id, "FAILED", log)
        raise
    client.set_terminated(run_id, status="FINISHED")
    checkpoint_uri = f"{checkpoints.uri}/{run_name}"
    steps = int(checkpoint["step"])
    return TrainResult(run_name, run_id, resumed, steps, report, checkpoint_uri, model_uri, version, tags)


def resend_backlog(client, run_id: str, checkpoint: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """Send the metrics the final checkpoint says had not reached MLflow when it was written (a
    tracking server that was down at the end of training). Those that did arrive meanwhile are
    stored once all the same."""
    from pipelines.tracking_queue import MetricsRecord, send

    backlog = (checkpoint.get("extra") or {}).get(TRACKING_BACKLOG) or []
    if backlog:
        # Usually just the last report, which the worker's sender had not sent yet when the final
        # checkpoint was made; after an outage, everything MLflow missed.
        log(f"sending {len(backlog)} metric record(s) that had not reached MLflow when the final checkpoint was made")
    for record in backlog:
        send(client, run_id, MetricsRecord.from_dict(record))


def publish_generator(
    client, settings, run_id, run_name, generator, config, evaluator, tags, step, register_as, log, bootstrap=100
):
    """Evaluate (with bootstrap intervals), log samples, the model and its card; register if asked."""
    import mlflow

    from pipelines import tracking
    from pipelines.registry import model_card

    dataset = evaluator.dataset
    report = evaluator.evaluate(generator, bootstrap=bootstrap)
    tracking.log_metrics(client, run_id, {f"eval/{k}": v for k, v in flatten_report(report).items()}, step)
    picture = sample_picture(generator, dataset, config.eval.seed, run_name)
    tracking.log_image(client, run_id, picture, "samples/final.png")
    log_training_gif(client, settings.tracking_uri, run_id)
    card = model_card(register_as or run_name, run_name, config.flat(), tags, report, "samples/final.png")
    client.log_text(run_id, card, "model_card.md")
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        model_uri = log_generator_model(generator, config).model_uri
    version = None
    if register_as:
        version = register_generator(client, register_as, model_uri, run_id, run_name, tags, report, log)
    return model_uri, version, report


def register_generator(client, name, model_uri, run_id, run_name, tags, report, log=print) -> str:
    """Register the generator of training run `run_id` once: a repeated call returns the same version."""
    from pipelines.registry import register_version

    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if existing:
        version = max(existing, key=lambda v: int(v.version)).version
        log(f"{name} version {version} already holds run {run_id}; not registering it twice")
        return version
    lineage = {**tags, "training.run_id": run_id, "training.run_name": run_name}
    lineage.update({f"metric.{k}": f"{v['value']:.6g}" for k, v in report.items()})
    version = register_version(client, name, model_uri, run_id, lineage)
    log(f"registered {name} version {version} (alias challenger)")
    return version


def log_training_gif(client, tracking_uri: str, run_id: str) -> None:
    """Assemble the frames the workers logged during training into samples/training.gif."""
    import tempfile

    import mlflow
    from PIL import Image

    from gan_core.pictures import save_gif

    if not client.list_artifacts(run_id, FRAMES):
        return
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=FRAMES, dst_path=folder, tracking_uri=tracking_uri
        )
        frames = [Image.open(path).convert("RGB") for path in sorted(Path(local).glob("step-*.png"))]
        if frames:
            client.log_artifact(run_id, str(save_gif(frames, Path(folder) / "training.gif")), "samples")


def load_logged_generator(model_uri: str, tracking_uri: str) -> tuple[torch.nn.Module, ExperimentConfig]:
    """A generator logged by `ganpipe train`, and the config it was trained with."""
    import mlflow

    from pipelines.serving import load_served_generator

    mlflow.set_tracking_uri(tracking_uri)
    return load_served_generator(model_uri)
