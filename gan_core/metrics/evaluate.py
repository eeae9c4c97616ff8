"""The evaluation protocol: fixed seeds, N samples, every metric beside its real-vs-real value.

`Evaluator(dataset, eval_cfg)` prepares the reference once (real features from the train
split; the held-out test split as the "real" generator that says what a perfect score looks
like), then `evaluate(generator)` scores any generator on the same latent draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gan_core.config import EvalConfig
from gan_core.data import Dataset
from gan_core.data.images import STACKED_PROTOCOL_SAMPLES
from gan_core.metrics.classifier import FeatureClassifier, load_or_train_classifier
from gan_core.metrics.features import (
    class_histogram_metrics,
    frechet_distance,
    inception_score,
    prdc,
    stacked_mode_metrics,
)
from gan_core.metrics.mixtures import mixture_metrics
from gan_core.registry import Registry

PRDC_MAX = 5000  # pairwise distances grow quadratically; 5000 keeps them under a second


@dataclass
class SampleView:
    """Generated (or held-out real) samples and what the classifier makes of them."""

    x: torch.Tensor
    features: torch.Tensor | None = None
    probs: torch.Tensor | None = None  # per image, or per channel for stacked digits
    requested: torch.Tensor | None = None  # labels asked of a conditional generator


@dataclass
class Reference:
    dataset: Dataset
    features: torch.Tensor | None = None  # train split
    class_histogram: torch.Tensor | None = None


@dataclass(frozen=True)
class Metric:
    applies: Callable[[Dataset], bool]
    compute: Callable[[SampleView, Reference], dict[str, float]]
    higher_is_better: dict[str, bool] = field(default_factory=dict)


METRICS: Registry[Metric] = Registry("metric")

_points = lambda d: d.kind == "points" and d.modes is not None  # noqa: E731
_images = lambda d: d.kind == "images" and d.labelled  # noqa: E731
_single = lambda d: _images(d) and not d.digit_classes  # noqa: E731

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
        lambda s, r: {"frechet_distance": frechet_distance(r.features, s.features)},
        {"frechet_distance": False},
    )
)
METRICS.register("inception-score", "Inception-style score from the classifier's class probabilities")(
    Metric(_single, lambda s, r: {"inception_score": inception_score(s.probs)}, {"inception_score": True})
)
METRICS.register("prdc", "precision/recall (k=3) and density/coverage (k=5) in feature space")(
    Metric(
        _images,
        lambda s, r: prdc(r.features[:PRDC_MAX], s.features[:PRDC_MAX]),
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
        self.config = config or EvalConfig()
        self.classifier_accuracy: float | None = None
        self.classifier = classifier
        if self.classifier is None and _images(dataset):
            self.classifier, self.classifier_accuracy = load_or_train_classifier(
                dataset, cache_dir, self.config.classifier_epochs, log=log
            )
        self.metrics = [name for name in METRICS if METRICS.get(name).applies(dataset)]
        self.reference = self._reference()
        self._real: dict[str, float] | None = None
        # Stacked digits: 1000 modes need the protocol's 26,000 samples to be seen at all.
        self.n_samples = max(self.config.n_samples, STACKED_PROTOCOL_SAMPLES if dataset.digit_classes else 0)

    def _reference(self) -> Reference:
        reference = Reference(self.dataset)
        if self.classifier is not None:
            n = min(len(self.dataset.train_x), max(self.config.n_samples, 2500), PRDC_MAX * 2)
            reference.features = self.view(self.dataset.train_x[:n]).features
            if self.dataset.train_y is not None and not self.dataset.digit_classes:
                reference.class_histogram = torch.bincount(self.dataset.train_y, minlength=self.dataset.num_classes)
        return reference

    def view(self, x: torch.Tensor, requested: torch.Tensor | None = None) -> SampleView:
        x = x.float().nan_to_num(0.0).clamp(-1e6, 1e6)
        if self.classifier is None:
            return SampleView(x, requested=requested)
        channels = x.shape[1]
        if self.dataset.digit_classes:  # one digit per channel
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
            n = min(self.n_samples, len(self.dataset.test_x))
            labels = self.dataset.test_y[:n] if self.dataset.test_y is not None else None
            self._real = self.score(self.view(self.dataset.test_x[:n], requested=labels))
            if self.classifier_accuracy is not None:
                self._real["classifier_accuracy"] = self.classifier_accuracy
        return self._real

    def evaluate(
        self, generator: torch.nn.Module, n: int | None = None, bootstrap: int = 0, confidence: float = 0.95
    ) -> dict[str, dict[str, float]]:
        """{metric: {"value": generated, "real": held-out real}} on the fixed latent draws.

        With `bootstrap` > 0 each metric also gets `ci_low`/`ci_high`: the percentile interval
        of the metric over that many resamples (with replacement) of the generated samples.
        """
        samples, requested = generate(generator, n or self.n_samples, self.config.seed)
        view = self.view(samples, requested)
        values = self.score(view)
        values["finite_fraction"] = float(torch.isfinite(samples.flatten(1)).all(1).double().mean())
        real = self.real_baseline()
        report = {
            name: {"value": value, "real": real.get(name, 1.0 if name == "finite_fraction" else float("nan"))}
            for name, value in values.items()
        }
        if bootstrap:
            for name, (low, high) in self.bootstrap(view, bootstrap, confidence).items():
                report[name].update(ci_low=low, ci_high=high)
        return report

    def bootstrap(self, view: SampleView, resamples: int, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
        """Percentile confidence intervals of every metric over resamples of the samples."""
        rng = torch.Generator().manual_seed(self.config.seed + 1)
        n = len(view.x)
        runs: dict[str, list[float]] = {}
        for _ in range(resamples):
            index = torch.randint(n, (n,), generator=rng)
            for name, value in self.score(subset_view(view, index)).items():
                runs.setdefault(name, []).append(value)
        tail = (1 - confidence) / 2
        return {
            name: (float(torch.tensor(v).quantile(tail)), float(torch.tensor(v).quantile(1 - tail)))
            for name, v in runs.items()
        }


def objective_of(metrics: dict[str, float], dataset: Dataset) -> float:
    """One number to rank generators by, higher is better: -Fréchet distance for images; for
    the 2-D mixtures (modes captured / modes) x (high-quality fraction) x exp(-reverse KL)."""
    if dataset.kind == "points":
        return metrics["modes"] / len(dataset.modes) * metrics["high_quality"] * math.exp(-metrics["reverse_kl"])
    return -metrics["frechet_distance"]


def coverage_from_metrics(metrics: dict[str, float], dataset: Dataset) -> float:
    """Share of the data's modes (2-D), classes (images) or digit triples (stacked) that samples reach."""
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
    return SampleView(
        view.x[index],
        view.features[index] if view.features is not None else None,
        probs,
        view.requested[index] if view.requested is not None else None,
    )


@torch.no_grad()
def generate(
    generator: torch.nn.Module, n: int, seed: int, batch: int = 1024
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples on CPU from fixed latents (and balanced labels for a conditional generator)."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, generator.latent_dim, generator=rng)
    labels = torch.arange(n) % generator.num_classes if generator.num_classes else None
    out = []
    for start in range(0, n, batch):
        z = latent[start : start + batch].to(device)
        y = labels[start : start + batch].to(device) if labels is not None else None
        out.append(generator(z, y).float().cpu())
    generator.train(was_training)
    return torch.cat(out), labels


def flatten_report(report: dict[str, dict[str, float]]) -> dict[str, float]:
    """{"fd": {"value": 3, "real": 1}} -> {"fd": 3, "fd_real": 1}, for logging."""
    flat: dict[str, float] = {}
    for name, pair in report.items():
        flat[name] = pair["value"]
        flat[f"{name}_real"] = pair["real"]
    return flat
