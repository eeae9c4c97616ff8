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
