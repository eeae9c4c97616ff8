"""Search spaces as users write them, and what Tune's schedulers receive."""

from pathlib import Path

import pytest
import yaml

from gan_core.config import ConfigError, load_config, preset_path
from pipelines.tune.space import load_space, pbt_mutations


def _space(tmp_path: Path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


def test_an_empty_space_is_refused(tmp_path: Path):
    """It ran a 'search' of one trial of the base config and called it the best."""
    with pytest.raises(ConfigError, match="must map dotted keys to distributions, e.g. optim.lr_g"):
        load_space(_space(tmp_path, ""), load_config(preset_path("ring")))


def test_numbers_yaml_reads_as_strings_are_numbers(tmp_path: Path):
    """YAML 1.1 reads 1e-4 as a string: the bounds were compared as text ('1e-4' < '1e-3' is false)."""
    [dimension] = load_space(_space(tmp_path, "optim.lr_g: {loguniform: [1e-4, 1e-3]}"), load_config())
    assert dimension.args == (1e-4, 1e-3)
    with pytest.raises(ConfigError, match=r"needs \[low, high\] with low < high, got \[0.001, 0.0001\]"):
        load_space(_space(tmp_path, "optim.lr_g: {loguniform: [1e-3, 1e-4]}"), load_config())


def test_pbt_gets_choices_as_lists_and_only_what_may_change_mid_training(tmp_path: Path):
    """Ray's PBT multiplies any mutation that is not a plain list by 0.8 or 1.2: the digits space's
    choice of learning-rate schedule (strings) crashed every PBT search."""
    space = {
        "optim.lr_schedule": {"choice": ["constant", "linear-decay"]},
        "optim.beta1": {"choice": [0.0, 0.5]},
        "optim.lr_g": {"loguniform": [1.0e-4, 1.0e-3]},
        "loss.name": {"choice": ["nonsaturating", "hinge"]},
        "loss.r1_weight": {"grid": [0.0, 0.1]},
        "model.g_width": {"choice": [128, 256]},
    }
    dimensions = load_space(_space(tmp_path, yaml.safe_dump(space)), load_config(preset_path("ring")))
    mutations = pbt_mutations(dimensions)
    assert sorted(mutations) == ["optim.beta1", "optim.lr_g", "optim.lr_schedule"]
    assert mutations["optim.lr_schedule"] == ["constant", "linear-decay"]
    assert mutations["optim.beta1"] == [0.0, 0.5]
    assert not isinstance(mutations["optim.lr_g"], list)  # a distribution PBT samples from


def test_a_dimension_given_twice_is_refused(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("optim.lr_g: {choice: [0.001]}\noptim.lr_g: {choice: [0.002]}\n")
    with pytest.raises(
        ConfigError, match=r"space\.yaml is not valid YAML at line 2, column 1: key 'optim.lr_g' is given twice"
    ):
        load_space(str(path), load_config(preset_path("ring")))
