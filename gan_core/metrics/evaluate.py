"""The evaluation protocol: fixed seeds, N samples, every metric beside its real-vs-real value.

`Evaluator(dataset, eval_cfg)` prepares the reference once (real features from the train
split; the held-out test split as the "real" generator that says what a perfect score looks
like), then `evaluate(generator)` scores any generator on the same latent draws.

Most of these metrics depend on how many samples they see: a Fréchet distance is biased upwards
on few samples, coverage grows with more, and recall falls (its k-NN balls surround the generated
samples, and shrink as more are drawn). Where the held-out split is smaller than the
generated sample (scikit-learn's digits: 359 held out, 2500 generated), the real-vs-real value
is not comparable with the generator's (measured on digits: coverage 0.89 against real data's
0.63, Fréchet distance 0.57 against 0.71, as if the generator beat real data; on its first 359
samples the same generator scores 0.50 and 0.82). Each metric then also gets `matched`: the
generator on as many samples as real data had.

A translation model (DiscoGAN) is scored on its translations A->B of the held-out A samples:
the reference, the feature classifier and the real-versus-real values belong to domain B, so
the image metrics say how real the translations look in B; the translation metrics add class
accuracy, reconstruction error and, on the 2-D toy, the mode mapping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gan_core.config import EvalConfig
from gan_core.data import Dataset
from gan_core.data.images import STACKED_PROTOCOL_SAMPLES
from gan_core.metrics.classifier import FeatureClassifier, load_or_train_classifier
from gan_core.metrics.features import (
    GaussianFit,
    Neighbourhoods,
    class_histogram_metrics,
    frechet_distance,
    inception_score,
    prdc,
    stacked_mode_metrics,
)
from gan_core.metrics.mixtures import mixture_metrics, mode_assignment
from gan_core.metrics.translation import (
    mapped_modes,
    per_sample_squared_error,
    translate,
    translation_accuracy,
)
from gan_core.models import is_translator
from gan_core.models.truncation import draw_latents
from gan_core.registry import Registry

PRDC_MAX = 5000  # pairwise distances grow quadratically; 5000 keeps them under a second
PROGRESS_EVERY_S = 10.0  # a bootstrap of the image metrics takes tens of seconds: say how far it is


@dataclass
class SampleView:
    """Generated (or held-out real) samples and what the classifier makes of them."""

    x: torch.Tensor
    features: torch.Tensor | None = None
    probs: torch.Tensor | None = None  # per image, or per channel for stacked digits
    requested: torch.Tensor | None = None  # labels asked of a conditional generator
    # Translations only, one value per sample: the class of each input (its label, or for points
    # its nearest mode in A), its A->B->A squared error, and the squared error to its true
    # counterpart in B where the dataset knows it.
    source_labels: torch.Tensor | None = None
    reconstruction_error: torch.Tensor | None = None
    paired_error: torch.Tensor | None = None


@dataclass
class Reference:
    dataset: Dataset  # for translations: domain B, where the translations should look real
    features: torch.Tensor | None = None  # train split
    class_histogram: torch.Tensor | None = None
    # The real side of the Fréchet distance and of precision/recall, made once from `features`.
    gaussian: GaussianFit | None = None
    neighbourhoods: Neighbourhoods | None = None


@dataclass(frozen=True)
class Metric:
    applies: Callable[[Dataset], bool]
    compute: Callable[[SampleView, Reference], dict[str, float]]
    higher_is_better: dict[str, bool] = field(default_factory=dict)


METRICS: Registry[Metric] = Registry("metric")

# A translation model's samples live in domain B: the sample metrics look there.
_domain = lambda d: d.target or d  # noqa: E731
_points = lambda d: _domain(d).kind == "points" and _domain(d).modes is not None  # noqa: E731
_images = lambda d: _domain(d).kind == "images" and _domain(d).labelled  # noqa: E731
_single = lambda d: _images(d) and not _domain(d).digit_classes  # noqa: E731

METRICS.register("mixture", "2-D mixtures: modes captured, % high-quality (3 sigma), reverse KL (PacGAN)")(
    Metric(
        _points,
        lambda s, r: mixture_metrics(s.x, r.dataset.modes, r.dataset.sigma),
        {"modes": True, "high_quality": True, "reverse_kl": False},
    )
)
METRICS.register("frechet", "Fréchet distance in the feature classifier's space (lower is better)")(
    Metric(
        _images,
        lambda s, r: {"frechet_distance": frechet_distance(r.gaussian, s.features)},
        {"frechet_distance": False},
    )
)
METRICS.register("inception-score", "Inception-style score from the classifier's class probabilities")(
    Metric(_single, lambda s, r: {"inception_score": inception_score(s.probs)}, {"inception_score": True})
)
METRICS.register("prdc", "precision/recall (k=3) and density/coverage (k=5) in feature space")(
    Metric(
        _images,
        lambda s, r: prdc(r.neighbourhoods, s.features[:PRDC_MAX]),
        {"precision": True, "recall": True, "density": True, "coverage": True},
    )
)
METRICS.register("classes", "class coverage and KL to the data's class histogram")(
    Metric(
        _single,
        lambda s, r: class_histogram_metrics(s.probs, r.class_histogram),
        {"class_coverage": True, "class_kl": False},
    )
)
METRICS.register("stacked-modes", "stacked digits: modes out of 1000 and KL to uniform")(
    Metric(
        lambda d: _images(d) and bool(d.digit_classes),
        lambda s, r: stacked_mode_metrics(s.probs, r.dataset.sample_shape[0], r.dataset.digit_classes),
        {"stacked_modes": True, "stacked_kl": False},
    )
)
METRICS.register("label-accuracy", "conditional generators: share of samples classified as the label asked for")(
    Metric(
        _single,
        lambda s, r: (
            {"label_accuracy": float((s.probs.argmax(1) == s.requested).double().mean())}
            if s.requested is not None
            else {}
        ),
        {"label_accuracy": True},
    )
)


METRICS.register("translation-accuracy", "translations: share classified (in B) as the class of their input")(
    Metric(
        lambda d: d.translation and _single(d),
        lambda s, r: (
            {"translation_accuracy": translation_accuracy(s.probs, s.source_labels)}
            if s.source_labels is not None
            else {}
        ),
        {"translation_accuracy": True},
    )
)
METRICS.register("reconstruction", "translations: A->B->A squared error; error to the true counterpart if known")(
    Metric(
        lambda d: d.translation,
        lambda s, r: {
            name: float(values.double().mean())
            for name, values in (("reconstruction_error", s.reconstruction_error), ("paired_error", s.paired_error))
            if values is not None
        },
        {"reconstruction_error": False, "paired_error": False},
    )
)
METRICS.register("mode-mapping", "2-D translations: distinct modes of B that the modes of A are sent to")(
    Metric(
        lambda d: d.translation and _points(d),
        lambda s, r: (
            {"mapped_modes": mapped_modes(s.x, s.source_labels, r.dataset.modes, r.dataset.sigma)}
            if s.source_labels is not None
            else {}
        ),
        {"mapped_modes": True},
    )
)


def better_direction(name: str) -> str:
    """'higher' or 'lower' for a reported value; '' for one no metric claims."""
    if name == "finite_fraction":  # every evaluation's own check, not a registered metric
        return "higher"
    try:
        return "higher" if higher_is_better(name) else "lower"
    except KeyError:
        return ""


def higher_is_better(name: str) -> bool:
    for metric_name in METRICS:
        table = METRICS.get(metric_name).higher_is_better
        if name in table:
            return table[name]
    raise KeyError(f"no metric reports {name!r}")


class Evaluator:
    def __init__(
        self,
        dataset: Dataset,
        config: EvalConfig | None = None,
        classifier: FeatureClassifier | None = None,
        cache_dir: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.log = log
        self.domain = _domain(dataset)  # where samples live: domain B for a translation model
        self.config = config or EvalConfig()
        self.classifier_accuracy: float | None = None
        self.classifier = classifier
        if self.classifier is None and _images(dataset):
            self.classifier, self.classifier_accuracy = load_or_train_classifier(
                self.domain, cache_dir, self.config.classifier_epochs, log=log, max_images=self.config.classifier_images
            )
        self.metrics = [name for name in METRICS if METRICS.get(name).applies(dataset)]
        self.reference = self._reference()
        self._real: dict[str, float] | None = None
        if dataset.translation:  # each held-out input once: repeating inputs would repeat translations
            self.n_samples = min(self.config.n_samples, len(dataset.test_x))
        else:  # Stacked digits: 1000 modes need the protocol's 26,000 samples to be seen at all.
            self.n_samples = max(self.config.n_samples, STACKED_PROTOCOL_SAMPLES if dataset.digit_classes else 0)

    def _reference(self) -> Reference:
        domain = self.domain
        reference = Reference(domain)
        if self.classifier is not None:
            n = min(len(domain.train_x), max(self.config.n_samples, 2500), PRDC_MAX * 2)
            reference.features = self.view(domain.train_x[:n]).features
            reference.gaussian = GaussianFit.of(reference.features)
            reference.neighbourhoods = Neighbourhoods.of(reference.features[:PRDC_MAX])
            if domain.train_y is not None and not domain.digit_classes:
                reference.class_histogram = torch.bincount(domain.train_y, minlength=domain.num_classes)
        return reference

    def view(self, x: torch.Tensor, requested: torch.Tensor | None = None) -> SampleView:
        x = x.float().nan_to_num(0.0).clamp(-1e6, 1e6)
        if self.classifier is None:
            return SampleView(x, requested=requested)
        channels = x.shape[1]
        if self.domain.digit_classes:  # one digit per channel
            feats, probs = self.classifier.embed(x.reshape(-1, 1, *x.shape[2:]))
            return SampleView(x, feats.reshape(len(x), channels * feats.shape[1]), probs, requested)
        feats, probs = self.classifier.embed(x)
        return SampleView(x, feats, probs, requested)

    def score(self, view: SampleView) -> dict[str, float]:
        results: dict[str, float] = {}
        for name in self.metrics:
            results.update(METRICS.get(name).compute(view, self.reference))
        return results

    def real_baseline(self) -> dict[str, float]:
        """The metrics of held-out real data: what a perfect generator would score here."""
        if self._real is None:
            self._real = self._translation_baseline() if self.dataset.translation else self._sample_baseline()
            if self.classifier_accuracy is not None:
                self._real["classifier_accuracy"] = self.classifier_accuracy
        return self._real

    @property
    def real_samples(self) -> int:
        """How many held-out samples the real-vs-real values are measured on."""
        return min(self.n_samples, len(self.domain.test_x))

    def _sample_baseline(self) -> dict[str, float]:
        n = self.real_samples
        labels = self.dataset.test_y[:n] if self.dataset.test_y is not None else None
        return self.score(self.view(self.dataset.test_x[:n], requested=labels))

    def _translation_baseline(self) -> dict[str, float]:
        """A perfect translator would give real B: held-out B scored as translations of their own
        class, round trips and counterparts exact, each mode of A sent to a mode of its own."""
        domain = self.domain
        n = self.real_samples
        view = self.view(domain.test_x[:n])
        view.source_labels = domain.test_y[:n] if domain.kind == "images" and domain.test_y is not None else None
        view.reconstruction_error = torch.zeros(n)
        view.paired_error = torch.zeros(n) if self.dataset.paired_test else None
        real = self.score(view)
        if "mode-mapping" in self.metrics:
            real["mapped_modes"] = float(min(len(self.dataset.modes), len(domain.modes)))
        return real

    def sample(self, generator: torch.nn.Module, n: int | None = None) -> SampleView:
        """Samples of `generator` and what the classifier makes of them: from the fixed latent draws,
        or for a translator its translations of the first `n` held-out samples of domain A."""
        return self._draw(generator, n)[1]

    def _draw(self, generator: torch.nn.Module, n: int | None = None) -> tuple[torch.Tensor, SampleView]:
        """(raw samples, their view): the view sanitises non-finite values, the raw ones keep them."""
        n = n or self.n_samples
        if not is_translator(generator):
            samples, requested = generate(generator, n, self.config.seed)
            return samples, self.view(samples, requested)
        dataset = self.dataset
        inputs = dataset.test_x[:n]
        translations, round_trips = translate(generator, inputs)
        view = self.view(translations)
        view.reconstruction_error = per_sample_squared_error(round_trips, inputs)
        if dataset.paired_test:
            view.paired_error = per_sample_squared_error(translations, self.domain.test_x[: len(inputs)])
        if dataset.kind == "points":
            view.source_labels = mode_assignment(inputs, dataset.modes, dataset.sigma)[0]
        elif dataset.test_y is not None:
            view.source_labels = dataset.test_y[: len(inputs)]
        return translations, view

    def evaluate(
        self, generator: torch.nn.Module, n: int | None = None, bootstrap: int = 0, confidence: float = 0.95
    ) -> dict[str, dict[str, float]]:
        """{metric: {"value": generated, "real": held-out real}} on the fixed latent draws.

        With `bootstrap` > 0 each metric also gets `ci_low`/`ci_high`: the bias-corrected
        percentile interval over that many resamples (with replacement) of the generated samples.
        With more samples than real data had, each also gets `matched`: the value on the first
        `real_samples` of them, which is what `real` compares with.
        """
        samples, view = self._draw(generator, n)
        values = self.score(view)
        values["finite_fraction"] = float(torch.isfinite(samples.flatten(1)).all(1).double().mean())
        real = self.real_baseline()
        report = {
            name: {"value": value, "real": real.get(name, 1.0 if name == "finite_fraction" else float("nan"))}
            for name, value in values.items()
        }
        if len(view.x) > self.real_samples:
            for name, value in self.score(subset_view(view, torch.arange(self.real_samples))).items():
                report[name]["matched"] = value
        if bootstrap:
            for name, (low, high) in self.bootstrap(view, bootstrap, confidence, estimates=values).items():
                report[name].update(ci_low=low, ci_high=high)
        return report

    def bootstrap(
        self, view: SampleView, resamples: int, confidence: float = 0.95, estimates: dict[str, float] | None = None
    ) -> dict[str, tuple[float, float]]:
        """Bias-corrected percentile intervals of every metric over resamples of the samples.

        A resample drawn with replacement repeats samples, which by itself raises a Fréchet
        distance and lowers recall or coverage; the plain percentile interval then need not
        even contain the estimate. Given the `estimates` on the full sample, each interval is
        shifted by its metric's bootstrap bias (mean over resamples minus the estimate), then
        kept within the values the metric took (over the resamples and the estimate) and made to
        hold the estimate: shifted alone, "8 of 8 modes" got the interval [5.9, 9.9] and a
        reverse KL one below zero.
        """
        rng = torch.Generator().manual_seed(self.config.seed + 1)
        n = len(view.x)
        runs: dict[str, list[float]] = {}
        started = said = time.monotonic()
        for done in range(1, resamples + 1):
            index = torch.randint(n, (n,), generator=rng)
            for name, value in self.score(subset_view(view, index)).items():
                runs.setdefault(name, []).append(value)
            if self.log and time.monotonic() - said >= PROGRESS_EVERY_S and done < resamples:
                said = time.monotonic()
                self.log(f"bootstrap intervals: {done} of {resamples} resamples, {said - started:.0f} s")
        tail = (1 - confidence) / 2
        intervals = {}
        for name, values in runs.items():
            draws = torch.tensor(values, dtype=torch.float64)
            estimate = estimates.get(name) if estimates else None
            bias = float(draws.mean()) - estimate if estimate is not None else 0.0
            low, high = float(draws.quantile(tail)) - bias, float(draws.quantile(1 - tail)) - bias
            seen = [float(draws.min()), float(draws.max()), *([estimate] if estimate is not None else [])]
            low, high = max(low, min(seen)), min(high, max(seen))
            if estimate is not None:
                low, high = min(low, estimate), max(high, estimate)
            intervals[name] = (low, high)
        return intervals


def objective_of(metrics: dict[str, float], dataset: Dataset) -> float:
    """One number to rank generators by, higher is better: -Fréchet distance for images; for
    the 2-D mixtures (modes captured / modes) x (high-quality fraction) x exp(-reverse KL).

    Translations: the class accuracy for images (a realistic translation of the wrong digit is
    a failure that the Fréchet distance cannot see); for the 2-D toy (modes of B reached /
    modes of A) x (high-quality fraction)."""
    if dataset.translation:
        if dataset.kind == "points":
            return metrics["mapped_modes"] / len(dataset.modes) * metrics["high_quality"]
        return metrics["translation_accuracy"]
    if dataset.kind == "points":
        return metrics["modes"] / len(dataset.modes) * metrics["high_quality"] * math.exp(-metrics["reverse_kl"])
    return -metrics["frechet_distance"]


def coverage_from_metrics(metrics: dict[str, float], dataset: Dataset) -> float:
    """Share of the data's modes (2-D), classes (images) or digit triples (stacked) that samples reach;
    for translations of the 2-D toy, the share of A's modes sent to distinct modes of B."""
    if "mapped_modes" in metrics:
        return metrics["mapped_modes"] / len(dataset.modes)
    if "modes" in metrics:
        return metrics["modes"] / len(dataset.modes)
    if "stacked_modes" in metrics:
        return metrics["stacked_modes"] / dataset.num_classes
    if "class_coverage" in metrics:
        return metrics["class_coverage"]
    raise ValueError(f"no coverage measure for dataset {dataset.name!r}")


def subset_view(view: SampleView, index: torch.Tensor) -> SampleView:
    """The samples at `index` (e.g. a bootstrap resample), with their features and probabilities."""
    probs = view.probs
    if probs is not None and len(probs) != len(view.x):  # stacked digits: one row per channel
        probs = probs.view(len(view.x), -1, probs.shape[1])[index].reshape(-1, probs.shape[1])
    elif probs is not None:
        probs = probs[index]
    pick = lambda values: values[index] if values is not None else None  # noqa: E731
    return SampleView(
        view.x[index],
        pick(view.features),
        probs,
        pick(view.requested),
        pick(view.source_labels),
        pick(view.reconstruction_error),
        pick(view.paired_error),
    )


@torch.no_grad()
def generate(
    generator: torch.nn.Module,
    n: int,
    seed: int,
    batch: int = 1024,
    label: int = -1,
    threshold: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples on CPU from fixed latents; a conditional generator's labels cycle through its
    classes (label -1) or are all `label`. The same (n, seed, label) gives the same samples in
    evaluation, pictures, `ganpipe sample` and the served model. `threshold`: a truncating
    generator's, when already calibrated."""
    if is_translator(generator):
        raise TypeError("a translator draws nothing from latents: use Evaluator.sample (held-out inputs) or translate")
    labels = class_labels(generator, n, label)
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    latent = draw_latents(generator, n, torch.Generator().manual_seed(seed), threshold)
    out = []
    for start in range(0, n, batch):
        z = latent[start : start + batch].to(device)
        y = labels[start : start + batch].to(device) if labels is not None else None
        out.append(generator(z, y).float().cpu())
    generator.train(was_training)
    return torch.cat(out), labels


def class_labels(generator: torch.nn.Module, n: int, label: int = -1) -> torch.Tensor | None:
    """n labels for a conditional generator: cycling through its classes (-1) or all `label`."""
    classes = generator.num_classes
    if not classes:
        if label != -1:
            raise ValueError(f"label={label} is not allowed: this generator is unconditional (it draws no classes)")
        return None
    if not -1 <= label < classes:  # -7 is no class, not a second way to say -1
        raise ValueError(f"label={label} is not allowed: -1 (cycle) or 0..{classes - 1}")
    return torch.arange(n) % classes if label < 0 else torch.full((n,), label)


def flatten_report(report: dict[str, dict[str, float]]) -> dict[str, float]:
    """{"fd": {"value": 3, "real": 1, "matched": 4}} -> {"fd": 3, "fd_real": 1, "fd_matched": 4}, for logging."""
    flat: dict[str, float] = {}
    for name, pair in report.items():
        flat[name] = pair["value"]
        flat[f"{name}_real"] = pair["real"]
        if "matched" in pair:
            flat[f"{name}_matched"] = pair["matched"]
    return flat


MATCHED = "on as many samples as real data"  # how reports name `matched`


def versus_real(pair: dict[str, float]) -> str:
    """The real-data comparison of one metric, for a log line: like with like."""
    if "matched" in pair:
        return f"real data: {pair['real']:.4f}; {MATCHED}: {pair['matched']:.4f}"
    return f"real data: {pair['real']:.4f}"


def metrics_table(report: dict[str, dict[str, float]]) -> list[str]:
    """The evaluation report as markdown table rows: which way is better, value, interval, real
    data (and `matched`)."""
    matched = any("matched" in pair for pair in report.values())  # real data had fewer samples
    lines = ["| metric | better | value | 95% interval | real data |" + (f" {MATCHED} |" if matched else "")]
    lines.append("|---|---|---|---|---|" + ("---|" if matched else ""))
    for name, pair in report.items():
        cells = [name, better_direction(name), f"{pair['value']:.4g}"]
        cells.append(f"[{pair['ci_low']:.4g}, {pair['ci_high']:.4g}]" if "ci_low" in pair else "")
        cells.append(f"{pair['real']:.4g}" if "real" in pair else "")
        if matched:
            cells.append(f"{pair['matched']:.4g}" if "matched" in pair else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
