"""The served generator refuses requests it cannot answer, in words MLflow's scoring server passes on."""

import re

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from gan_core.config import load_config, preset_path
from gan_core.models import MODELS
from pipelines.tracking.model import BadRequest, save_generator_model


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    config = load_config(preset_path("digits-cgan"))
    generator = MODELS.get(config.model.name)(config.model, (1, 8, 8), 10).generator
    folder = tmp_path_factory.mktemp("served") / "model"
    return mlflow.pyfunc.load_model(str(save_generator_model(generator, config, folder)))


def test_labels_cycle_or_name_a_class(conditional):
    frame = pd.DataFrame({"count": [3, 2], "seed": [0, 1], "label": [-1, 9]})
    assert conditional.predict(frame).shape == (5, 1, 8, 8)


def test_records_that_name_a_label_in_some_rows_only_cycle_in_the_others(conditional):
    """Such records reach the model as a float column with NaN where the label was left out,
    which a long-typed column refused before the model saw them."""
    mixed = conditional.predict(
        pd.DataFrame.from_records([{"count": 3, "seed": 0, "label": 7}, {"count": 3, "seed": 1}])
    )
    sevens = conditional.predict(pd.DataFrame({"count": [3], "seed": [0], "label": [7]}))
    cycled = conditional.predict(pd.DataFrame({"count": [3], "seed": [1]}))
    np.testing.assert_array_equal(mixed, np.concatenate([sevens, cycled]))


@pytest.mark.parametrize(
    ("row", "refusal"),
    [
        ({"count": 2, "seed": 0, "label": -7}, "label=-7 is not allowed: -1 (cycle) or 0..9"),  # was taken for -1
        ({"count": 2, "seed": 0, "label": 10}, "label=10 is not allowed: -1 (cycle) or 0..9"),
        ({"count": 2, "seed": 0, "label": "seven"}, "label='seven' is not allowed: an integer, -1 (cycle) or a class"),
        ({"count": 2, "seed": 0, "label": 2.5}, "label=2.5 is not allowed: an integer, -1 (cycle) or a class"),
        ({"count": 0, "seed": 0, "label": 1}, "count=0 is not allowed: 1..100000"),
        ({"count": 2, "seed": -3, "label": 1}, "seed=-3 is not allowed: an integer >= 0"),
    ],
)
def test_a_request_out_of_range_is_refused_with_its_reason(conditional, row, refusal):
    with pytest.raises(BadRequest, match=re.escape(refusal)) as refused:
        conditional.predict(pd.DataFrame([row]))
    # The scoring server answers an MlflowException with its message (HTTP 400); it hid any other.
    assert isinstance(refused.value, MlflowException) and refused.value.error_code == "INVALID_PARAMETER_VALUE"


def _artifact(**changes):
    from pipelines.tracking.model import generator_artifact

    config = load_config(preset_path("ring"))
    saved = generator_artifact(MODELS.get(config.model.name)(config.model, (2,), 0).generator, config)
    saved.update(changes)
    return {k: v for k, v in saved.items() if v is not None}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not torch at all", r"not a safe generator weights file"),
        ("tensor", r"not a ganpipe generator \(format 'Tensor', expected 'ganpipe-generator/1'\)"),
        ({"format": "ganpipe-generator/0"}, r"not a ganpipe generator \(format 'ganpipe-generator/0'"),
        ({"weights": None, "num_classes": None}, r"a ganpipe generator without num_classes, weights$"),
        ({"config": "{not json"}, r"its config cannot be read \(Expecting property name"),
        ({"config": '{"optim": {"lr_g": -3}}'}, r"its config cannot be read \(optim.lr_g=-3"),
        ({"sample_shape": [3]}, r"weights do not fit the mlp generator"),
    ],
)
def test_a_weights_file_that_fails_a_check_is_refused_naming_it(tmp_path, content, problem):
    import torch

    from pipelines.tracking.model import ModelArtifactError, load_generator_artifact

    path = tmp_path / "generator.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(torch.zeros(3) if content == "tensor" else _artifact(**content), path)
    with pytest.raises(ModelArtifactError, match=rf"^{re.escape(str(path))}: {problem}"):
        load_generator_artifact(path)


def test_a_sound_weights_file_loads(tmp_path):
    import torch

    from pipelines.tracking.model import load_generator_artifact

    torch.save(_artifact(), tmp_path / "generator.pt")
    generator, config = load_generator_artifact(tmp_path / "generator.pt")
    assert config.data.name == "ring" and tuple(generator.sample_shape) == (2,)
