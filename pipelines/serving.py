"""The generator as a servable MLflow pyfunc model.

Input: a table with one row per request — `count` (samples), `seed` (latent seed) and
`label` (a class for conditional generators; -1 cycles through the classes). Output: the
samples as an array, (N, C, H, W) images in [-1, 1] or (N, 2) points.

The model is logged as code (generator_model.py), not as a pickled object, and carries its
weights as a plain tensor file loaded with weights_only=True, plus the source of gan_core and
pipelines (code_paths): `mlflow.pyfunc.load_model` and `mlflow models serve` unpickle nothing
and work wherever torch and MLflow are installed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from gan_core.config import ExperimentConfig

WEIGHTS = "generator_weights"
MAX_COUNT = 100_000


class ModelArtifactError(ValueError):
    """A model artifact failed its checks and was refused."""


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.generator, self.config = load_generator_artifact(context.artifacts[WEIGHTS])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        frame = pd.DataFrame(model_input)
        missing = {"count", "seed"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"input needs columns count and seed (and label for conditional models); missing {sorted(missing)}"
            )
        outputs = [
            self.sample(int(row["count"]), int(row["seed"]), int(row.get("label", -1))) for _, row in frame.iterrows()
        ]
        return np.concatenate(outputs)

    def sample(self, count: int, seed: int, label: int = -1) -> np.ndarray:
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count={count} is not allowed: 1..{MAX_COUNT}")
        generator = self.generator
        latent = torch.randn(count, generator.latent_dim, generator=torch.Generator().manual_seed(seed))
        labels = None
        if generator.num_classes:
            if label >= generator.num_classes:
                raise ValueError(f"label={label} is not allowed: -1 (cycle) or 0..{generator.num_classes - 1}")
            labels = torch.arange(count) % generator.num_classes if label < 0 else torch.full((count,), label)
        with torch.no_grad():
            return generator(latent, labels).float().numpy()


def generator_artifact(generator: torch.nn.Module, config: ExperimentConfig) -> dict[str, Any]:
    return {
        "format": "ganpipe-generator/1",
        "config": json.dumps(config.to_dict()),
        "sample_shape": list(generator.sample_shape),
        "num_classes": generator.num_classes,
        "weights": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
    }


def load_generator_artifact(path: str | Path):
    """Rebuild a generator from its weights file, refusing anything that fails its checks."""
    from gan_core.config import from_dict
    from gan_core.models import MODELS

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickled code, corrupt bytes: refuse either way
        raise ModelArtifactError(
            f"{path}: not a safe generator weights file ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != "ganpipe-generator/1":
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise ModelArtifactError(f"{path}: not a ganpipe generator (format {found!r})")
    config = from_dict(json.loads(saved["config"]))
    generator = MODELS.get(config.model.name)(
        config.model, tuple(saved["sample_shape"]), saved["num_classes"]
    ).generator
    try:
        generator.load_state_dict(saved["weights"])
    except RuntimeError as error:
        raise ModelArtifactError(f"{path}: weights do not fit the {config.model.name} generator ({error})") from None
    if not all(torch.isfinite(t).all() for t in saved["weights"].values() if t.is_floating_point()):
        raise ModelArtifactError(f"{path}: weights contain NaN or infinity")
    return generator.eval(), config


def log_generator_model(generator: torch.nn.Module, config: ExperimentConfig, name: str = "generator"):
    """Log the generator as a pyfunc model with signature, input example and requirements."""

    import gan_core

    generator = generator.cpu().eval()
    example = pd.DataFrame({"count": [4], "seed": [0], "label": [-1]})
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "generator.pt"
        torch.save(generator_artifact(generator, config), weights)
        signature = _signature(generator)
        package = Path(__file__).parent
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(package / "generator_model.py"),  # code, not a pickled object
            artifacts={WEIGHTS: str(weights)},
            code_paths=[str(Path(gan_core.__file__).parent), str(package)],
            signature=signature,
            input_example=example,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy", "pandas", "pyyaml", "scikit-learn"],
            metadata={"ganpipe_config": json.dumps(config.to_dict())},
        )


def _signature(generator: torch.nn.Module):
    """count and seed required, label optional (-1: cycle); output (N, *sample_shape) float32."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec("long", "count"), ColSpec("long", "seed"), ColSpec("long", "label", required=False)])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *generator.sample_shape))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def load_served_generator(model_uri: str):
    """(generator, config) from a pyfunc model logged by `log_generator_model`."""
    model = mlflow.pyfunc.load_model(model_uri)
    python_model = model.unwrap_python_model()
    if not isinstance(python_model, GeneratorModel):
        raise ModelArtifactError(f"{model_uri} is not a ganpipe generator model")
    return python_model.generator, python_model.config
