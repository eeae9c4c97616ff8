"""Where a generator comes from: an MLflow model URI, a checkpoint file, or a run folder."""

from __future__ import annotations

from pathlib import Path

from gan_core.config import from_dict
from gan_core.outputs import latest_checkpoint
from gan_core.training import generator_from_checkpoint, load_checkpoint
from pipelines.settings import Settings
from pipelines.tracking.model import load_served_generator
from pipelines.tracking.server import REFUSED
from pipelines.tracking.store import require_existing_store

STORE_SCHEMES = ("runs:/", "models:/")  # model URIs that the tracking store resolves


def is_model_uri(source: str) -> bool:
    return source.startswith(STORE_SCHEMES) or "://" in source


def load_generator(source: str, settings: Settings):
    """(generator, config, label) from an MLflow model URI, a checkpoint file or a run folder."""

    if is_model_uri(source):
        from mlflow.exceptions import MlflowException

        if source.startswith(STORE_SCHEMES):  # a file:// or s3:// model is read where it is
            require_existing_store(settings)
        try:
            generator, config = load_served_generator(source, settings.tracking_uri)
        except MlflowException as error:  # a URI typed wrong, a model or alias that is not there
            if error.error_code in REFUSED:  # ... or the server refused the account: said as such
                raise
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

    if (folder / "checkpoints").is_dir():
        return latest_checkpoint(folder / "checkpoints")
    if (folder / "state.pt").is_file():
        return load_checkpoint(folder / "state.pt")
    ray_checkpoints = sorted(folder.glob("checkpoint_*/state.pt"))  # named by time: the last is the newest
    return load_checkpoint(ray_checkpoints[-1]) if ray_checkpoints else None
