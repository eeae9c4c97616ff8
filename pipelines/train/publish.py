"""After training: evaluate the generator, log its samples, GIF and model card, log the model,
register it if asked; and send the metrics MLflow had not received by the final checkpoint."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gan_core.config import ExperimentConfig
from gan_core.metrics import Evaluator
from gan_core.outputs import sample_picture
from gan_core.outputs.recorder import CURVES
from gan_core.pictures import loss_curves, save_gif
from pipelines.registry.versions import model_card, register_generator
from pipelines.settings import Settings
from pipelines.tracking import runs
from pipelines.tracking.model import log_generator_model
from pipelines.tracking.sender import MetricsRecord, send
from pipelines.train.reporter import FRAMES, TRACKING_BACKLOG

FINAL_PICTURE = "samples/final.png"


@dataclass(frozen=True)
class TrainedRun:
    """What publishing needs to know of the training that made the generator."""

    run_id: str
    run_name: str
    config: ExperimentConfig
    tags: dict[str, str]  # lineage: dataset version, config hash, code version
    step: int


@dataclass(frozen=True)
class Published:
    model_uri: str
    version: str | None  # the registered version, if registered
    report: dict[str, dict[str, float]]


def publish_generator(
    client: Any,
    settings: Settings,
    run: TrainedRun,
    generator: torch.nn.Module,
    evaluator: Evaluator,
    register_as: str | None = None,
    bootstrap: int = 100,
    log: Callable[[str], None] = print,
) -> Published:
    """Evaluate (with bootstrap intervals), log samples, the model and its card; register if asked."""
    import mlflow

    report = evaluator.evaluate(generator, bootstrap=bootstrap)
    runs.log_report(client, run.run_id, report, run.step, prefix="eval/")
    picture = sample_picture(generator, evaluator.dataset, run.config.eval.seed, f"{run.run_name}, step {run.step}")
    runs.log_image(client, run.run_id, picture, FINAL_PICTURE)
    log_training_gif(client, settings.tracking_uri, run.run_id)
    log_training_curves(client, run)
    card = model_card(register_as or run.run_name, run.run_name, run.config.flat(), run.tags, report, FINAL_PICTURE)
    client.log_text(run.run_id, card, "model_card.md")
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run(run_id=run.run_id):
        model_uri = log_generator_model(generator, run.config).model_uri
    version = None
    if register_as:
        version = register_generator(
            client, register_as, model_uri, run.run_id, run.run_name, run.tags, report, log, card
        )
    return Published(model_uri, version, report)


def log_training_gif(client: Any, tracking_uri: str, run_id: str) -> None:
    """Assemble the frames the workers logged during training into samples/training.gif."""
    import mlflow
    from PIL import Image

    frames = runs.step_images(client, run_id, FRAMES)
    if not frames:
        return
    with tempfile.TemporaryDirectory() as folder:
        # One download of the images folder (MLflow fetches its files in parallel), not one per frame.
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="images", dst_path=folder, tracking_uri=tracking_uri
        )
        pictures = [Image.open(Path(folder) / path).convert("RGB") for path in frames.values()]
        client.log_artifact(run_id, str(save_gif(pictures, Path(folder) / "training.gif")), "samples")


def log_training_curves(client: Any, run: TrainedRun) -> None:
    """samples/curves.png, the picture `ganpipe train --local` writes, from the metrics the
    workers logged (checked: MLflow draws each metric on its own chart, not a page to keep)."""
    history: dict[int, dict[str, float]] = {}
    for key in CURVES:
        for point in client.get_metric_history(run.run_id, key):
            history.setdefault(point.step, {"step": point.step})[key] = point.value
    if not history:
        return
    with tempfile.TemporaryDirectory() as folder:
        rows = [history[step] for step in sorted(history)]
        title = f"{run.run_name} ({run.config.data.name})"
        client.log_artifact(run.run_id, str(loss_curves(rows, CURVES, Path(folder) / "curves.png", title)), "samples")


def resend_backlog(client: Any, run_id: str, checkpoint: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """Send the metrics the final checkpoint says had not reached MLflow when it was written (a
    tracking server that was down at the end of training). Those that did arrive meanwhile are
    stored once all the same."""
    backlog = (checkpoint.get("extra") or {}).get(TRACKING_BACKLOG) or []
    if backlog:
        # Usually just the last report, which the worker's sender had not sent yet when the final
        # checkpoint was made; after an outage, everything MLflow missed.
        log(f"sending {len(backlog)} metric record(s) that had not reached MLflow when the final checkpoint was made")
    for record in backlog:
        send(client, run_id, MetricsRecord.from_dict(record))
