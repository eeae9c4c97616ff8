import math

import pytest
import torch

from gan_core.config import EvalConfig
from gan_core.data import load_dataset
from gan_core.metrics import METRICS, CollapseWatch, Evaluator, coverage_fall, flatten_report, metrics_table
from gan_core.metrics.features import GaussianFit, Neighbourhoods, frechet_distance, prdc
from gan_core.metrics.mixtures import mixture_metrics


class Fixed(torch.nn.Module):
    """A 'generator' that returns rows of a fixed tensor (to test metrics on known samples)."""

    def __init__(self, samples: torch.Tensor, num_classes: int = 0):
        super().__init__()
        self.samples, self.latent_dim, self.num_classes = samples, 4, num_classes
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z, labels=None):
        index = torch.arange(len(z)) % len(self.samples)
        return self.samples[index]


def test_mixture_metrics_on_real_and_collapsed_samples():
    ring = load_dataset("ring", n_train=5000)
    real = mixture_metrics(ring.test_x[:2500], ring.modes, ring.sigma)
    assert real["modes"] == 8
    assert real["high_quality"] == pytest.approx(0.989, abs=0.01)  # P(|N(0, I_2)| < 3)
    assert real["reverse_kl"] < 0.01
    one_mode = ring.modes[0] + ring.sigma * torch.randn(2500, 2)
    collapsed = mixture_metrics(one_mode, ring.modes, ring.sigma)
    assert collapsed["modes"] == 1 and collapsed["reverse_kl"] == pytest.approx(math.log(8))
    far = mixture_metrics(torch.full((100, 2), 9.0), ring.modes, ring.sigma)
    assert far == {"modes": 0.0, "high_quality": 0.0, "reverse_kl": pytest.approx(math.log(8))}


def test_frechet_distance_and_prdc_basics():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 8, generator=gen), torch.randn(2000, 8, generator=gen)
    assert frechet_distance(a, b) < 0.1
    assert frechet_distance(a, b + 3) == pytest.approx(8 * 9, rel=0.05)
    same = prdc(a, b)
    assert all(same[k] > 0.8 for k in ("precision", "recall", "coverage")) and 0.8 < same["density"] < 1.2
    shifted = prdc(a, b + 10)
    assert shifted["precision"] == 0 and shifted["recall"] == 0 and shifted["coverage"] == 0


def test_prdc_with_the_real_side_made_once_matches_the_definitions_on_a_resample():
    # The evaluator makes the real side once and scores hundreds of bootstrap resamples (which
    # repeat samples) against it; the figures must be the papers' definitions, point by point.
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(60, 3, generator=gen), 1.3 * torch.randn(80, 3, generator=gen) + 0.4
    fake = fake[torch.randint(len(fake), (len(fake),), generator=gen)]
    got = prdc(Neighbourhoods.of(real), fake)

    def radius(points, i, k):  # distance to the k-th nearest other point (repeats count)
        return sorted(float((points[i] - points[j]).norm()) for j in range(len(points)) if j != i)[k - 1]

    near = lambda x, y, r: float((x - y).norm()) <= r  # noqa: E731
    real3, real5 = [radius(real, i, 3) for i in range(60)], [radius(real, i, 5) for i in range(60)]
    fake3 = [radius(fake, j, 3) for j in range(80)]
    assert got["precision"] == pytest.approx(sum(any(near(real[i], f, real3[i]) for i in range(60)) for f in fake) / 80)
    assert got["recall"] == pytest.approx(sum(any(near(r, fake[j], fake3[j]) for j in range(80)) for r in real) / 60)
    inside = sum(near(real[i], f, real5[i]) for i in range(60) for f in fake)
    assert got["density"] == pytest.approx(inside / 5 / 80)
    assert got["coverage"] == pytest.approx(sum(any(near(real[i], f, real5[i]) for f in fake) for i in range(60)) / 60)
    fit = GaussianFit.of(real)
    assert frechet_distance(fit, fake) == pytest.approx(frechet_distance(real, fake))  # one fit, many resamples


@pytest.fixture(scope="module")
def digits_evaluator(classifier_cache):
    return Evaluator(load_dataset("digits"), EvalConfig(n_samples=360), cache_dir=classifier_cache)


def test_classifier_is_accurate_and_real_data_scores_near_ideal(digits_evaluator):
    assert digits_evaluator.classifier_accuracy >= 0.97
    real = digits_evaluator.real_baseline()
    assert real["class_coverage"] == 1.0 and real["class_kl"] < 0.05
    assert real["frechet_distance"] < 2.0
    assert real["inception_score"] > 6.5
    assert real["precision"] > 0.7 and real["recall"] > 0.7


def test_image_metrics_flag_a_collapsed_generator(digits_evaluator):
    data = digits_evaluator.dataset
    ones = data.train_x[data.train_y == 1][:1]  # every sample is the same "1"
    report = digits_evaluator.evaluate(Fixed(ones))
    real = digits_evaluator.real_baseline()
    assert report["class_coverage"]["value"] == pytest.approx(0.1)
    assert report["class_kl"]["value"] > 2.0
    assert report["inception_score"]["value"] < 1.1
    assert report["frechet_distance"]["value"] > 20 * real["frechet_distance"]
    assert report["recall"]["value"] < 0.05
    assert report["class_coverage"]["real"] == 1.0  # each metric carries its real-vs-real value


def test_with_fewer_held_out_samples_each_metric_is_also_given_on_as_many_generated(classifier_cache):
    # Digits hold out 359 images: a Fréchet distance or coverage of 1438 generated samples is not
    # comparable with real data's on 359, so each metric also carries its value on the first 359.
    evaluator = Evaluator(load_dataset("digits"), EvalConfig(n_samples=1438), cache_dir=classifier_cache)
    generator = Fixed(evaluator.dataset.train_x)
    assert evaluator.real_samples == 359
    report = evaluator.evaluate(generator)
    as_many = evaluator.evaluate(generator, n=359)
    for name in ("frechet_distance", "coverage", "recall", "class_kl"):
        assert report[name]["matched"] == pytest.approx(as_many[name]["value"]), name
        assert report[name]["matched"] != pytest.approx(report[name]["value"]), name  # the sample size matters
        assert "matched" not in as_many[name]
    assert flatten_report(report)["coverage_matched"] == report["coverage"]["matched"]
    header, rule, *rows = metrics_table(report)
    assert header.endswith("| real data | on as many samples as real data |") and rule.count("---") == 6
    assert all(row.count("|") == 7 for row in rows)
    directions = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in rows}
    assert directions["frechet_distance"] == "lower" and directions["coverage"] == "higher"
    assert "on as many" not in metrics_table(as_many)[0]


def test_label_accuracy_for_conditional_generators(digits_evaluator):
    data = digits_evaluator.dataset
    by_class = torch.stack([data.train_x[data.train_y == c][0] for c in range(10)])
    right = digits_evaluator.evaluate(Fixed(by_class, num_classes=10))
    wrong = digits_evaluator.evaluate(Fixed(by_class.roll(1, 0), num_classes=10))
    assert right["label_accuracy"]["value"] > 0.9 > 0.1 > wrong["label_accuracy"]["value"]


def test_stacked_modes_real_vs_collapsed(classifier_cache):
    evaluator = Evaluator(
        load_dataset("stacked-digits", n_train=2000), EvalConfig(n_samples=100), cache_dir=classifier_cache
    )
    real = evaluator.real_baseline()
    assert real["stacked_modes"] > 950 and real["stacked_kl"] < 0.15
    single = evaluator.dataset.train_x[:1]
    assert evaluator.evaluate(Fixed(single))["stacked_modes"]["value"] == 1


def _state(samples: torch.Tensor, steps: int = 10):
    """What the watch reads of a training state: the sampler and the step budget."""
    from types import SimpleNamespace

    return SimpleNamespace(sampler=Fixed(samples), config=SimpleNamespace(train=SimpleNamespace(steps=steps)))


def _ring_draws(ring, counts: list[int]) -> torch.Tensor:
    """counts[i] samples within 3 sigma of mode i."""
    return torch.cat([ring.modes[i] + ring.sigma * 0.5 * torch.randn(n, 2) for i, n in enumerate(counts)])


@pytest.fixture(scope="module")
def ring_watch():
    ring = load_dataset("ring", n_train=5000)
    return ring, lambda: CollapseWatch(Evaluator(ring, EvalConfig(n_samples=800)), every=1, threshold=0.5)


def test_collapse_watch_warns_when_coverage_falls_by_a_quarter_or_more(ring_watch):
    ring, new_watch = ring_watch
    torch.manual_seed(0)
    watch = new_watch()
    assert watch.measure(1, _state(ring.test_x[:1000])) == 1.0 and not watch.events
    assert watch.measure(2, _state(_ring_draws(ring, [100] * 6))) == 0.75  # 8 -> 6 modes: exactly a quarter
    assert watch.events[-1].reason == "coverage fell from 1.00 to 0.75"
    watch.measure(3, _state(ring.modes[:2] + 0.001))
    assert watch.events[-1].step == 3 and "fell from 1.00 to 0.25" in watch.events[-1].reason


def test_coverage_fall_finds_modes_lost_after_they_were_reached():
    assert coverage_fall([(100, 0.25), (200, 0.5), (300, 1.0), (400, 1.0)]) is None  # early lows are learning
    assert coverage_fall([(100, 1.0), (200, 0.875), (300, 1.0)]) is None  # one of 8 modes: less than a quarter
    late = coverage_fall([(300, 1.0), (100, 0.5), (400, 0.75), (500, 0.5), (200, 0.9)])  # steps in any order
    assert (late.peak_step, late.peak, late.low_step, late.low, late.final) == (300, 1.0, 500, 0.5, 0.5)
    assert late.describe() == "coverage fell from 1.00 at step 300 to 0.50 at step 500 and ended there"
    regained = coverage_fall([(1, 0.8), (2, 0.4), (3, 1.0), (4, 0.7), (5, 0.9)])  # the deepest fall is kept
    assert (regained.peak_step, regained.low_step, regained.final) == (1, 2, 0.9)
    assert regained.describe().endswith("to 0.40 at step 2 and ended at 0.90")
    assert coverage_fall([(1, 1.0), (2, 0.75)]) is not None  # 8 -> 6 modes: exactly a quarter counts


def test_collapse_watch_sees_a_generator_that_piles_its_samples_into_one_mode(ring_watch):
    """Every mode reached, most samples in one of them: coverage alone called it healthy."""
    ring, new_watch = ring_watch
    torch.manual_seed(0)
    watch = new_watch()
    assert watch.measure(5, _state(_ring_draws(ring, [930] + [10] * 7))) == 1.0
    assert "balance 0.18" in watch.events[-1].reason and "below threshold 0.50" in watch.events[-1].reason


def test_collapse_watch_leaves_early_training_alone_until_half_way(ring_watch):
    """Coverage 0 at the first checks of a run that had not yet learnt anything was 'collapse'."""
    ring, new_watch = ring_watch
    watch = new_watch()
    nowhere = torch.full((500, 2), 10.0)  # far from every mode
    assert watch.measure(1, _state(nowhere)) == 0.0 and watch.measure(4, _state(nowhere)) == 0.0
    assert not watch.events
    watch.measure(5, _state(nowhere))  # half of 10 steps
    assert watch.events and "coverage 0.00" in watch.events[-1].reason


def test_collapse_watch_sees_one_image_per_class(digits_evaluator):
    """Every class, in balance, but one image of each: no variety, and coverage saw none of it."""
    data = digits_evaluator.dataset
    one_each = torch.stack([data.train_x[data.train_y == c][0] for c in range(10)])
    healthy, collapsed = CollapseWatch(digits_evaluator, every=1), CollapseWatch(digits_evaluator, every=1)
    healthy.measure(10, _state(data.test_x))
    assert not healthy.events
    assert collapsed.measure(10, _state(one_each)) == 1.0
    assert collapsed.events[-1].reason.startswith("diversity 0.0")


def test_metric_registry_lists_every_family():
    assert {"mixture", "frechet", "inception-score", "prdc", "classes", "stacked-modes", "label-accuracy"} <= set(
        METRICS
    )


def test_bootstrap_intervals_are_bias_corrected_and_hold_the_estimate(digits_evaluator):
    # Resampling with replacement repeats images, which alone raises the Fréchet distance:
    # uncorrected percentile intervals of real test digits used to lie entirely above the estimate.
    data = digits_evaluator.dataset
    report = digits_evaluator.evaluate(Fixed(data.test_x), bootstrap=40)
    for name in ("frechet_distance", "recall", "coverage", "class_kl"):
        pair = report[name]
        assert pair["ci_low"] <= pair["value"] <= pair["ci_high"], (name, pair)


def test_bootstrap_intervals_stay_within_what_the_metric_can_take():
    """Shifted by the bias alone, a generator with all 8 modes got modes in [5.9, 9.9] and a reverse
    KL interval reaching below zero."""
    ring = load_dataset("ring", n_train=2000)
    evaluator = Evaluator(ring, EvalConfig(n_samples=500))
    report = evaluator.evaluate(Fixed(ring.test_x), bootstrap=40)
    assert 0 <= report["modes"]["ci_low"] <= report["modes"]["value"] <= report["modes"]["ci_high"] <= 8
    assert 0 <= report["reverse_kl"]["ci_low"] <= report["reverse_kl"]["value"] <= report["reverse_kl"]["ci_high"]
    for name in ("high_quality", "coverage"):
        if name in report:
            assert 0 <= report[name]["ci_low"] <= report[name]["ci_high"] <= 1, (name, report[name])


def test_a_damaged_cached_classifier_is_trained_again_and_replaced(tmp_path):
    from gan_core.metrics.classifier import classifier_key, load_or_train_classifier

    digits = load_dataset("digits")
    cached = tmp_path / f"classifier-{classifier_key(digits, 1, 0)}.pt"
    cached.write_bytes(b"not a torch file")  # a write cut short (it used not to be atomic)
    said: list[str] = []
    _, accuracy = load_or_train_classifier(digits, tmp_path, epochs=1, log=said.append)
    assert any(line.startswith(f"cached classifier {cached} cannot be read") for line in said), said
    assert load_or_train_classifier(digits, tmp_path, epochs=1)[1] == accuracy  # the new one, read back
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temporary file left beside it


def _digits_at_28_pixels():
    """MNIST-sized images: the 8x8 digits scaled to 20x20 on a 28x28 background, as MNIST centres them."""
    import dataclasses

    import torch.nn.functional as F

    digits = load_dataset("digits")
    grow = lambda x: F.pad(F.interpolate(x, size=20, mode="bilinear"), (4,) * 4, value=-1.0)  # noqa: E731
    return dataclasses.replace(digits, name="digits-28", train_x=grow(digits.train_x), test_x=grow(digits.test_x))


def test_the_classifier_trains_for_its_epochs_but_sees_at_most_its_image_budget():
    """40 epochs of MNIST at full resolution would have taken about 90 minutes on 2 CPU cores
    before the first evaluation could start; the budget caps it at a few epochs there."""
    from gan_core.metrics.classifier import training_steps

    assert training_steps(1438, 40, 200_000) == 40 * 22  # the digits: their 40 epochs, as before
    assert training_steps(60_000, 40, 200_000) == 3125  # MNIST: 200,000 images, 3.3 epochs
    assert training_steps(60_000, 1, 200_000) == 937  # fewer epochs than the budget allows
    assert training_steps(10, 40, 64) == 1  # never nothing


def test_an_mnist_sized_classifier_keeps_to_its_budget_is_accurate_and_is_cached(tmp_path):
    from gan_core.metrics.classifier import classifier_key, load_or_train_classifier

    data = _digits_at_28_pixels()
    said: list[str] = []
    model, accuracy = load_or_train_classifier(data, tmp_path, epochs=40, log=said.append, max_images=12_800)
    assert said[-1].startswith("feature classifier: 12,800/12,800 images (100%)"), said  # 9 epochs, not 40
    assert len(said) == 4 and all("images/s" in line and "s left" in line for line in said[:3]), said  # as it goes
    assert accuracy >= 0.9
    assert model.features[0].stride == (2, 2)  # the strided stem that makes 28x28 affordable

    said.clear()
    again, cached_accuracy = load_or_train_classifier(data, tmp_path, epochs=40, log=said.append, max_images=12_800)
    assert said == [] and cached_accuracy == accuracy  # read from the cache
    assert torch.equal(again.embed(data.test_x[:50])[0], model.embed(data.test_x[:50])[0])
    # A budget that changes the training is another classifier; one that does not is the same.
    assert classifier_key(data, 40, 0, 6400) != classifier_key(data, 40, 0, 12_800)
    assert classifier_key(load_dataset("digits"), 40, 0, 10**6) == classifier_key(load_dataset("digits"), 40, 0)


def test_an_eval_config_refuses_a_classifier_budget_below_one_batch():
    with pytest.raises(ValueError, match=r"eval\.classifier_images=10 is not allowed: an integer >= 64"):
        EvalConfig(classifier_images=10)
