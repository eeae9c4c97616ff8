"""DiscoGAN: two-domain datasets, the model pair, its step in fit(), its metrics, pictures, serving."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gan_core.config import ConfigError, EvalConfig, load_config, preset_path
from gan_core.data import TRANSLATION_DATASETS, load_dataset
from gan_core.data.pairs import invert
from gan_core.local_run import train_local
from gan_core.metrics import Evaluator, coverage_from_metrics, objective_of
from gan_core.models import MODELS, Translator
from gan_core.outputs import sample_picture
from gan_core.pictures import caption_height, translation_grid
from gan_core.training import Hook, build_models, fit, generator_from_checkpoint
from gan_core.training.state import build_state

TOY = ["data.name=mixture-pair", "data.n_train=2000", "model.name=discogan", "model.g_width=32", "model.d_width=32"]
TOY_TRAIN = ["train.batch_size=64", "train.steps=20", "train.log_every=5", "train.checkpoint_every=10"]
DIGITS_EVAL = EvalConfig(n_samples=400, classifier_epochs=10)


def _toy_config(*extra: str):
    return load_config(overrides=[*TOY, *TOY_TRAIN, *extra])


class Recorder(Hook):
    def __init__(self):
        self.metrics, self.checkpoints = [], []

    def on_metrics(self, step, metrics, state):
        self.metrics.append((step, metrics))

    def on_checkpoint(self, step, checkpoint, state):
        self.checkpoints.append((step, checkpoint))


class Fixed(torch.nn.Module):
    """A stand-in generator: a fixed function (to score known translations)."""

    def __init__(self, function):
        super().__init__()
        self.function = function
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.function(x)


# --------------------------------------------------------------------------- data and config


def test_digit_pairs_are_unpaired_in_training_and_paired_when_held_out():
    data = load_dataset("digits-inverted")
    b = data.target
    assert data.translation and data.paired_test and data.sample_shape == b.sample_shape == (1, 8, 8)
    assert len(data.train_x) + len(b.train_x) == 1797 - 359  # the two halves of the digits' training split
    # No training image of A has its counterpart in B: B's images undone are other images.
    undone = invert(b.train_x).flatten(1)
    assert torch.cdist(data.train_x.flatten(1), undone).min() > 0
    assert torch.equal(b.test_x, invert(data.test_x)) and torch.equal(b.test_y, data.test_y)
    for name in ("digits-rotated", "digits-thick"):
        other = load_dataset(name)
        assert other.target.test_x.shape == other.test_x.shape and other.target.test_x.min() >= -1
        assert not torch.equal(other.target.test_x, other.test_x)


def test_mixture_pair_has_five_modes_in_a_and_ten_in_b():
    data = load_dataset("mixture-pair", n_train=1000)
    assert len(data.modes) == 5 and len(data.target.modes) == 10
    assert data.train_x.norm(dim=1).mean() == pytest.approx(1.0, abs=0.05)
    assert data.target.train_x.norm(dim=1).mean() == pytest.approx(2.0, abs=0.05)
    assert {"mixture-pair", "digits-inverted", "digits-rotated", "digits-thick"} == set(TRANSLATION_DATASETS)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.name=discogan"], "data.name='ring' is not allowed: a two-domain dataset for model 'discogan'"),
        (["data.name=digits-inverted", "model.name=dcgan"], "model.name='dcgan' is not allowed: a translation model"),
        (["data.name=mixture-pair", "model.name=discogan", "model.conditioning=acgan"], "model.conditioning='acgan'"),
        (["loss.reconstruction=l3"], "loss.reconstruction='l3' is not allowed: one of ['mse', 'l1']"),
        (["loss.reconstruction_weight=-1"], "loss.reconstruction_weight=-1.0 is not allowed: a finite number >= 0"),
    ],
)
def test_bad_discogan_configs_name_the_key_and_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(overrides=overrides)
    assert message in str(error.value)


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("shape,halvings", [((1, 8, 8), 1), ((3, 16, 16), 2), ((1, 28, 28), 2), ((3, 64, 64), 4)])
def test_generators_are_encoder_decoders_down_to_a_4x4_map(shape, halvings):
    config = load_config(overrides=["data.name=digits-inverted", "model.name=discogan", "model.g_width=8"])
    translator, critics = MODELS.get("discogan")(config.model, shape)
    encoder = translator.a_to_b[0]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in encoder.modules()) == halvings
    a, b = torch.rand(2, *shape) * 2 - 1, torch.rand(2, *shape) * 2 - 1
    cycle = translator(a, b)
    assert all(t.shape == (2, *shape) for t in cycle) and translator(a).shape == (2, *shape)
    assert cycle.fake_b.abs().max() <= 1  # tanh
    logit_a, logit_b = critics(a, b)
    assert logit_a.shape == logit_b.shape == (2,)


def test_shapes_discogan_cannot_take_are_refused():
    config = load_config(overrides=["data.name=digits-inverted", "model.name=discogan"]).model
    with pytest.raises(ValueError, match="even image side above 4"):
        MODELS.get("discogan")(config, (1, 7, 7))
    with pytest.raises(ValueError, match="points"):
        MODELS.get("discogan")(config, (1, 8, 6))


# --------------------------------------------------------------------------- training in fit()


def test_fit_trains_both_directions_and_reports_reconstruction():
    recorder = Recorder()
    state = fit(_toy_config(), load_dataset("mixture-pair", n_train=2000), [recorder])
    assert isinstance(state.generator, Translator) and state.step == 20
    metrics = recorder.metrics[-1][1]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "g_adv_loss", "g_rec_a", "g_rec_b", "g_grad_norm"):
        assert key in metrics and math.isfinite(metrics[key]), key
    # One optimiser per side holds both networks of the pair.
    assert {id(p) for g in state.opt_g.param_groups for p in g["params"]} == {
        id(p) for p in state.generator.parameters()
    }


@pytest.mark.parametrize(
    "extra",
    [
        ["loss.name=wgan-gp", "train.d_steps=2"],
        ["loss.name=hinge", "loss.r1_weight=1.0"],
        ["loss.name=least-squares", "loss.label_smoothing=0.1", "loss.instance_noise=0.1"],
        ["loss.reconstruction=l1", "loss.reconstruction_weight=10"],
        ["model.pack=2", "model.d_norm=spectral"],
        ["train.ema_decay=0"],
    ],
)
def test_every_loss_and_trick_trains_a_translator(extra):
    recorder = Recorder()
    fit(_toy_config(*extra), load_dataset("mixture-pair", n_train=2000), [recorder])
    assert all(math.isfinite(v) for _, m in recorder.metrics for v in m.values())


def test_resume_continues_exactly_including_domain_b_batches():
    data = load_dataset("mixture-pair", n_train=2000)
    straight = fit(_toy_config(), data)
    recorder = Recorder()
    fit(_toy_config("train.steps=10"), data, [recorder])
    step, checkpoint = recorder.checkpoints[-1]
    assert step == 10 and checkpoint["target_batches"] is not None
    resumed = fit(_toy_config(), data, resume_from=checkpoint)
    weights = lambda s: torch.cat([p.detach().flatten() for p in s.generator.parameters()])  # noqa: E731
    assert torch.equal(weights(straight), weights(resumed))
    rebuilt = generator_from_checkpoint(straight.checkpoint())
    x = data.test_x[:5]
    with torch.no_grad():
        assert isinstance(rebuilt, Translator) and torch.allclose(rebuilt(x), straight.sampler.eval()(x))


# --------------------------------------------------------------------------- metrics


def test_toy_metrics_reward_a_mapping_to_distinct_modes_and_punish_collapse():
    data = load_dataset("mixture-pair", n_train=1000)
    evaluator = Evaluator(data, EvalConfig(n_samples=1000))
    # A's mode k lies at angle 72k on radius 1; B's mode 2k at the same angle on radius 2.
    oracle = Translator(Fixed(lambda x: 2 * x), Fixed(lambda x: x / 2), (2,))
    report = evaluator.evaluate(oracle)
    assert report["mapped_modes"] == {"value": 5.0, "real": 5.0}
    assert report["reconstruction_error"]["value"] < 1e-10 and report["modes"]["value"] == 5
    metrics = {name: pair["value"] for name, pair in report.items()}
    assert coverage_from_metrics(metrics, data) == 1.0 and objective_of(metrics, data) > 0.5
    collapsed = Translator(Fixed(lambda x: data.target.modes[0].expand_as(x)), Fixed(lambda x: x), (2,))
    metrics = {name: pair["value"] for name, pair in evaluator.evaluate(collapsed).items()}
    assert metrics["mapped_modes"] == 1.0 and coverage_from_metrics(metrics, data) == pytest.approx(0.2)
    assert metrics["reconstruction_error"] > 0.5


@pytest.fixture(scope="module")
def digits_evaluator(classifier_cache):
    return Evaluator(load_dataset("digits-inverted"), DIGITS_EVAL, cache_dir=classifier_cache)


def test_true_relation_scores_like_real_data_and_a_wrong_one_does_not(digits_evaluator):
    assert digits_evaluator.classifier_accuracy >= 0.95  # trained on domain B only
    truth = Translator(Fixed(invert), Fixed(invert), (1, 8, 8))
    report = digits_evaluator.evaluate(truth)
    assert report["translation_accuracy"]["value"] == pytest.approx(report["translation_accuracy"]["real"])
    assert report["paired_error"]["value"] == 0 and report["reconstruction_error"]["value"] == 0
    assert report["frechet_distance"]["value"] < 3 * report["frechet_distance"]["real"]
    identity = Translator(Fixed(lambda x: x), Fixed(lambda x: x), (1, 8, 8))  # never leaves domain A
    report = digits_evaluator.evaluate(identity)
    assert report["frechet_distance"]["value"] > 20 and report["paired_error"]["value"] > 0.3


# --------------------------------------------------------------------------- pictures


def test_translation_grid_sets_each_input_beside_its_outputs():
    images = torch.rand(10, 1, 8, 8) * 2 - 1
    grid = translation_grid(images, -images, images, columns=5, gap=3)
    tile = 3 * 32 + 2  # three 8-pixel images upscaled to 32, two 1-pixel separators
    assert grid.size == (5 * (tile + 3) + 3, 2 * (32 + 3) + 3)


def test_toy_picture_is_a_scatter_of_inputs_and_translations():
    data = load_dataset("mixture-pair", n_train=1000)
    picture = sample_picture(Translator(Fixed(lambda x: 2 * x), Fixed(lambda x: x), (2,)), data, 0, "toy")
    assert picture.size == (800, 420)


# --------------------------------------------------------------------------- learning


def test_short_training_keeps_the_digit_and_lowers_reconstruction_error(tmp_path: Path, classifier_cache):
    """The issue's acceptance test: a short run raises class accuracy well above chance (0.1),
    lowers the reconstruction error from its value at step 0, and writes the picture."""
    overrides = ["train.steps=600", "train.sample_every=300", "train.checkpoint_every=600", "train.log_every=100"]
    overrides += [f"eval.n_samples={DIGITS_EVAL.n_samples}", f"eval.classifier_epochs={DIGITS_EVAL.classifier_epochs}"]
    config = load_config(preset_path("discogan-digits"), overrides)
    data = load_dataset(config.data.name)
    untrained = Evaluator(data, config.eval, cache_dir=classifier_cache).evaluate(
        build_state(config, data, torch.device("cpu")).generator
    )
    result = train_local(config, tmp_path / "run", cache_dir=classifier_cache, log=lambda line: None)
    accuracy = result.metrics["translation_accuracy"]["value"]
    assert untrained["translation_accuracy"]["value"] < 0.3 and accuracy >= 0.5, result.metrics
    assert result.metrics["reconstruction_error"]["value"] < 0.5 * untrained["reconstruction_error"]["value"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]["translation_accuracy"]
    with Image.open(tmp_path / "run" / "samples.png") as picture:
        picture.verify()
        assert picture.format == "PNG"
    with Image.open(tmp_path / "run" / "samples.png") as picture:
        # 48 held-out inputs, 8 groups a row: input | A->B | A->B->A, and a caption strip.
        assert picture.size == (8 * (3 * 32 + 2 + 3) + 3, 6 * (32 + 3) + 3 + caption_height())
    assert (tmp_path / "run" / "training.gif").is_file()


@pytest.mark.slow
def test_toy_mapping_sends_the_five_modes_of_a_to_distinct_modes_of_b():
    config = load_config(preset_path("discogan-toy"), ["train.steps=1500"])
    data = load_dataset(config.data.name, n_train=config.data.n_train, seed=config.data.seed)
    report = Evaluator(data, config.eval).evaluate(fit(config, data).sampler)
    assert report["mapped_modes"]["value"] >= 4, report
    assert report["high_quality"]["value"] >= 0.2 and report["reconstruction_error"]["value"] < 0.05, report


# --------------------------------------------------------------------------- serving


def test_served_discogan_takes_images_and_returns_translations(tmp_path: Path):
    mlflow = pytest.importorskip("mlflow")
    from pipelines.tracking.model import BadRequest, save_generator_model

    config = load_config(preset_path("discogan-digits"))
    data = load_dataset("digits-inverted")
    translator = build_models(config, data).generator.eval()
    model = mlflow.pyfunc.load_model(str(save_generator_model(translator, config, tmp_path / "model")))
    x = data.test_x[:3]
    request = pd.DataFrame(
        {"images": [row.flatten().tolist() for row in x], "direction": ["a_to_b", "b_to_a", "a_to_b"]}
    )
    out = model.predict(request)
    assert out.shape == (3, 1, 8, 8) and out.dtype == np.float32
    with torch.no_grad():
        np.testing.assert_allclose(out[[0, 2]], translator.a_to_b(x[[0, 2]]).numpy(), atol=1e-6)
        np.testing.assert_allclose(out[1], translator.b_to_a(x[1:2]).numpy()[0], atol=1e-6)
    python_model = model.unwrap_python_model()
    nested = python_model.translate(pd.DataFrame({"images": [x[0].tolist()]}))  # (1, 8, 8) lists, default A->B
    np.testing.assert_allclose(nested, out[:1], atol=1e-6)
    with pytest.raises(ValueError, match="has 3 values; this model takes 64"):
        python_model.translate(pd.DataFrame({"images": [[0.0, 0.0, 0.0]]}))
    with pytest.raises(BadRequest, match="direction='sideways' is not allowed"):
        python_model.translate(pd.DataFrame({"images": [x[0].flatten().tolist()], "direction": ["sideways"]}))
