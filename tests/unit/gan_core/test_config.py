from pathlib import Path

import pytest

from gan_core.config import ConfigError, ExperimentConfig, from_dict, load_config, preset_names, preset_path


def test_defaults_build_and_are_frozen():
    config = load_config()
    assert isinstance(config, ExperimentConfig)
    with pytest.raises(AttributeError):
        config.optim.lr_g = 1.0  # type: ignore[misc]


def test_yaml_then_overrides_apply_in_order(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr_g: 0.001\ntrain:\n  steps: 10\n")
    config = load_config(path, ["optim.lr_g=2e-4", "model.name=dcgan", "data.name=digits"])
    assert config.optim.lr_g == pytest.approx(2e-4)
    assert config.train.steps == 10
    assert config.model.name == "dcgan"


def test_overrides_are_coerced_to_the_declared_type():
    config = load_config(overrides=["optim.lr_d=1e-4", "train.steps=5.0", "eval.n_samples=100"])
    assert isinstance(config.optim.lr_d, float) and config.optim.lr_d == pytest.approx(1e-4)
    assert isinstance(config.train.steps, int) and config.train.steps == 5


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.lr_gg=1", "optim.lr_gg"),
        ("optimiser.lr_g=1", "optimiser"),
        ("optim.lr_g=-1", "optim.lr_g"),
        ("optim.lr_g=fast", "optim.lr_g"),
        ("train.steps=2.5", "train.steps"),
        ("train.steps=0", "train.steps"),
        ("train.precision=fp8", "train.precision"),
        ("loss.r1_every=0", "loss.r1_every"),
        ("train.memory_format=nhwc", "train.memory_format"),
        ("train.memory_format=on", "train.memory_format"),  # YAML reads `on` as true
        ("model.name=transformer", "model.name"),
        ("loss.name=focal", "loss.name"),
        ("data.name=imagenet", "data.name"),
        ("loss.label_smoothing=0.7", "loss.label_smoothing"),
        ("train.ema_decay=1.0", "train.ema_decay"),
        ("model.pack=0", "model.pack"),
        ("optim.lr_schedule=step", "optim.lr_schedule"),
        ("optim.decay_start=1.0", "optim.decay_start"),
        ("optim.decay_to=1.5", "optim.decay_to"),
        ("train.seed=99999999999999999999", "train.seed"),  # was "Overflow when unpacking long long"
        ("data.seed=-1", "data.seed"),
        ("eval.seed=4294967296", "eval.seed"),
    ],
)
def test_bad_values_and_unknown_keys_name_the_key(override: str, named: str):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(overrides=[override])


def test_error_lists_what_is_allowed():
    with pytest.raises(ConfigError, match="allowed keys of optim: .*lr_g"):
        load_config(overrides=["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match=r"one of \['auto', 'fp32', 'bf16'\]"):
        load_config(overrides=["train.precision=fp16"])
    with pytest.raises(ConfigError, match=r"one of \['auto', 'channels_last', 'contiguous'\]"):
        load_config(overrides=["train.memory_format=off"])


def test_learning_rate_schedules():
    scale = lambda schedule, step: load_config(  # noqa: E731
        overrides=[f"optim.lr_schedule={schedule}", "optim.decay_start=0.5"]
    ).optim.lr_scale(step, 100)
    assert load_config().optim.lr_schedule == "constant"
    assert [scale("constant", s) for s in (1, 51, 100)] == [1.0, 1.0, 1.0]
    assert [scale("linear-decay", s) for s in (1, 51, 76, 100)] == pytest.approx([1.0, 1.0, 0.5, 0.02])
    assert [scale("cosine", s) for s in (1, 51, 76)] == pytest.approx([1.0, 1.0, 0.5])
    assert 0 < scale("cosine", 100) < 0.01
    floor = load_config(overrides=["optim.lr_schedule=linear-decay", "optim.decay_start=0.5", "optim.decay_to=0.2"])
    assert [floor.optim.lr_scale(s, 100) for s in (51, 76)] == pytest.approx([1.0, 0.6])


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="train.batch_size.*multiple of model.pack=3"):
        load_config(overrides=["model.pack=3", "train.batch_size=64"])
    with pytest.raises(ConfigError, match="loss.label_smoothing"):
        load_config(overrides=["loss.name=hinge", "loss.label_smoothing=0.1"])
    with pytest.raises(ConfigError, match="model.pack"):
        load_config(overrides=["model.pack=2", "model.conditioning=acgan"])
    # torch.compile cannot differentiate twice (it failed mid-run with a traceback).
    with pytest.raises(ConfigError, match=r"train.compile=True is not allowed: false with R1"):
        load_config(overrides=["train.compile=true", "loss.r1_weight=0.1"])
    with pytest.raises(ConfigError, match=r"train.compile=True is not allowed: false with WGAN-GP"):
        load_config(overrides=["train.compile=true", "loss.name=wgan-gp"])
    assert load_config(overrides=["train.compile=true"]).train.compile
    # The translation step never read these: accepted, they changed nothing.
    with pytest.raises(ConfigError, match=r"loss.top_k=0.5 is not allowed: 1 for translation models"):
        load_config(preset_path("discogan-toy"), ["loss.top_k=0.5"])
    with pytest.raises(ConfigError, match=r"train.reuse_fakes=True is not allowed: false for translation models"):
        load_config(preset_path("discogan-toy"), ["train.reuse_fakes=true"])


def test_malformed_override_and_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(overrides=["optim.lr_g"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a map\n")
    with pytest.raises(ConfigError, match="must map sections"):
        load_config(bad)
    bad.write_text("optim: {lr_g:\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line 2, column 1: ") as error:
        load_config(bad)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ConfigError, match="bad.yaml is not text"):
        load_config(bad)


def test_round_trip_through_dict_and_stable_hash():
    config = load_config(overrides=["optim.lr_g=3e-4"])
    again = from_dict(config.to_dict())
    assert again == config
    assert again.hash() == config.hash()
    assert load_config().hash() != config.hash()
    assert config.flat()["optim.lr_g"] == pytest.approx(3e-4)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_valid(name: str):
    assert preset_path(name).is_file()
    load_config(preset_path(name))


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_path("nope")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path):
    """YAML keeps the last of two equal keys; the first `optim:` section was silently dropped."""
    path = tmp_path / "twice.yaml"
    path.write_text("optim: {lr_g: 0.001}\ntrain: {steps: 10}\noptim: {lr_d: 0.002}\n")
    with pytest.raises(
        ConfigError, match=r"twice\.yaml .* at line 3, column 1: key 'optim' is given twice \(first at line 1\)"
    ):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("optim:\n  lr_g: 0.001\n  lr_g: 0.002\n")
    with pytest.raises(ConfigError, match=r"line 3, column 3: key 'lr_g' is given twice"):
        load_config(nested)
