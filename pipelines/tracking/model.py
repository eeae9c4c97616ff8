"""The generator as a servable MLflow pyfunc model.

Input: a table with one row per request — `count` (samples), `seed` (latent seed) and
`label` (a class for conditional generators; -1 cycles through the classes). Output: the
samples as an array, (N, C, H, W) images in [-1, 1] or (N, 2) points. A generator trained
with `model.truncation` below 1 samples as it was evaluated: Jacobian-truncated latents.

A translation model (DiscoGAN) takes samples instead: a table with one row per sample, column
`images` (the sample's values, flat in C, H, W order or nested, in [-1, 1] for images) and
optional `direction` (`a_to_b`, the default, or `b_to_a`). Output: the translations, one per
row, in the same shape as the samples.

The model is logged as code (tracking/generator_model.py), not as a pickled object, and carries its
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
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

import gan_core
from gan_core.config import ExperimentConfig, from_dict
from gan_core.metrics.evaluate import generate
from gan_core.models import MODELS, is_translator
from gan_core.models.truncation import stretch_threshold, truncates

WEIGHTS = "generator_weights"
MAX_COUNT = 100_000


class ModelArtifactError(ValueError):
    """A model artifact failed its checks and was refused."""


class BadRequest(MlflowException, ValueError):
    """A request the model refuses. MLflow's scoring server answers an MlflowException with its
    message (HTTP 400); any other error became "an unexpected error while evaluating the model",
    with the reason at the end of a stack trace."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.generator, self.config = load_generator_artifact(context.artifacts[WEIGHTS])
        # The weights are fixed from here on: calibrate a truncating generator's threshold once.
        self.threshold = stretch_threshold(self.generator) if truncates(self.generator) else None

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        if is_translator(self.generator):
            return self.translate(model_input)
        frame = pd.DataFrame(model_input)
        missing = {"count", "seed"} - set(frame.columns)
        if missing:
            raise BadRequest(
                f"input needs columns count and seed (and label for conditional models); missing {sorted(missing)}"
            )
        labels = frame["label"] if "label" in frame.columns else [-1] * len(frame)
        outputs = [
            self.sample(int(count), int(seed), requested_label(label))
            for count, seed, label in zip(frame["count"], frame["seed"], labels, strict=True)
        ]
        return np.concatenate(outputs)

    def sample(self, count: int, seed: int, label: int = -1) -> np.ndarray:
        if not 1 <= count <= MAX_COUNT:
            raise BadRequest(f"count={count} is not allowed: 1..{MAX_COUNT}")
        if seed < 0:
            raise BadRequest(f"seed={seed} is not allowed: an integer >= 0")
        if not self.generator.num_classes:
            label = -1  # an unconditional model has always ignored the column
        try:
            samples, _ = generate(self.generator, count, seed, label=label, threshold=self.threshold)
        except ValueError as error:  # a label that is no class
            raise BadRequest(str(error)) from None
        return samples.numpy()

    def translate(self, model_input: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Translations of the given samples: a table (`images`, optional `direction`) or an array."""
        frame = pd.DataFrame({"images": list(model_input)} if isinstance(model_input, np.ndarray) else model_input)
        if "images" not in frame.columns:
            raise BadRequest(f"a translation model needs column images (direction optional); got {list(frame.columns)}")
        samples = self._samples(list(frame["images"]))
        directions = frame["direction"].fillna("a_to_b") if "direction" in frame.columns else None
        directions = np.asarray(directions if directions is not None else ["a_to_b"] * len(frame), dtype=object)
        unknown = sorted(set(directions) - {"a_to_b", "b_to_a"}, key=str)
        if unknown:
            raise BadRequest(f"direction={unknown[0]!r} is not allowed: 'a_to_b' or 'b_to_a'")
        out = torch.empty_like(samples)
        with torch.no_grad():
            for direction in set(directions):
                rows = torch.from_numpy(np.flatnonzero(directions == direction))
                out[rows] = self.generator.translate(samples[rows], str(direction)).float()
        return out.numpy()

    def _samples(self, rows: list) -> torch.Tensor:
        """(N, *sample_shape) float32 from rows that are flat or nested; refuses the wrong size or NaN."""
        shape = self.generator.sample_shape
        if not 1 <= len(rows) <= MAX_COUNT:
            raise BadRequest(f"{len(rows)} samples is not allowed: 1..{MAX_COUNT} per request")
        size = int(np.prod(shape))
        flat = []
        for i, row in enumerate(rows):
            values = np.asarray(row, dtype=np.float32).reshape(-1)
            if values.size != size:
                raise BadRequest(f"sample {i} has {values.size} values; this model takes {size} (shape {list(shape)})")
            flat.append(values)
        samples = torch.from_numpy(np.stack(flat)).view(len(rows), *shape)
        if not torch.isfinite(samples).all():
            raise BadRequest("samples must be finite numbers")
        return samples


def generator_artifact(generator: torch.nn.Module, config: ExperimentConfig) -> dict[str, Any]:
    return {
        "format": "ganpipe-generator/1",
        "config": json.dumps(config.to_dict()),
        "sample_shape": list(generator.sample_shape),
        "num_classes": generator.num_classes,
        "weights": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
    }


ARTIFACT_KEYS = ("config", "sample_shape", "num_classes", "weights")  # what generator_artifact writes


def load_generator_artifact(path: str | Path):
    """Rebuild a generator from its weights file, refusing anything that fails its checks."""

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickled code, corrupt bytes: refuse either way
        raise ModelArtifactError(
            f"{path}: not a safe generator weights file ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != "ganpipe-generator/1":
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise ModelArtifactError(f"{path}: not a ganpipe generator (format {found!r}, expected 'ganpipe-generator/1')")
    missing = [key for key in ARTIFACT_KEYS if key not in saved]
    if missing:
        raise ModelArtifactError(f"{path}: a ganpipe generator without {', '.join(missing)}")
    try:
        config = from_dict(json.loads(saved["config"]))
    except (TypeError, ValueError) as error:  # not JSON, or a config that fails its checks
        raise ModelArtifactError(f"{path}: its config cannot be read ({error})") from None
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
    with tempfile.TemporaryDirectory() as folder:
        return mlflow.pyfunc.log_model(name=name, **_pyfunc_arguments(generator, config, Path(folder)))


def save_generator_model(generator: torch.nn.Module, config: ExperimentConfig, path: str | Path) -> Path:
    """The same pyfunc model as `log_generator_model`, saved to a local folder (no tracking server)."""
    with tempfile.TemporaryDirectory() as folder:
        mlflow.pyfunc.save_model(path=str(path), **_pyfunc_arguments(generator, config, Path(folder)))
    return Path(path)


def _pyfunc_arguments(generator: torch.nn.Module, config: ExperimentConfig, folder: Path) -> dict[str, Any]:

    generator = generator.cpu().eval()
    weights = folder / "generator.pt"
    torch.save(generator_artifact(generator, config), weights)
    package = Path(__file__).parents[1]  # pipelines/, which the model's code imports
    return dict(
        python_model=str(Path(__file__).with_name("generator_model.py")),  # code, not a pickled object
        artifacts={WEIGHTS: str(weights)},
        code_paths=[str(Path(gan_core.__file__).parent), str(package)],
        signature=_signature(generator),
        input_example=_input_example(generator),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy", "pandas", "pyyaml", "scikit-learn"],
        metadata={"ganpipe_config": json.dumps(config.to_dict())},
    )


def requested_label(value: Any) -> int:
    """A request's label: a class, or -1 where the request left it out. Records that name a label in
    some rows only reach the model as a float column with NaN in the others."""
    if pd.api.types.is_scalar(value) and pd.isna(value):  # None, NaN, pd.NA
        return -1
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise BadRequest(f"label={value!r} is not allowed: an integer, -1 (cycle) or a class")


def _input_example(generator: torch.nn.Module) -> pd.DataFrame:
    if is_translator(generator):  # one blank sample (every value -1), translated A -> B
        return pd.DataFrame({"images": [[-1.0] * int(np.prod(generator.sample_shape))], "direction": ["a_to_b"]})
    return pd.DataFrame({"count": [4], "seed": [0], "label": [-1]})


def _signature(generator: torch.nn.Module):
    """count and seed required, label optional (-1: cycle); output (N, *sample_shape) float32.
    Translators: images (each sample's values, flat) required, direction optional.

    `label` is typed any, not long: a request whose records name a label in some rows only is a
    float column with NaN in the others, which a long column refuses before the model sees it;
    the model reads such a gap as -1 and refuses what is no integer (`requested_label`)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec
    from mlflow.types.schema import AnyType, Array

    if is_translator(generator):
        columns = [ColSpec(Array(DataType.double), "images"), ColSpec("string", "direction", required=False)]
    else:
        columns = [ColSpec("long", "count"), ColSpec("long", "seed"), ColSpec(AnyType(), "label", required=False)]
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *generator.sample_shape))])
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def load_served_generator(model_uri: str, tracking_uri: str | None = None):
    """(generator, config) from a pyfunc model logged by `log_generator_model`."""
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    python_model = model.unwrap_python_model()
    if not isinstance(python_model, GeneratorModel):
        raise ModelArtifactError(f"{model_uri} is not a ganpipe generator model")
    return python_model.generator, python_model.config
