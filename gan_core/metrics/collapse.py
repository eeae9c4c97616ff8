"""Mode-collapse signals to watch during training.

Every `every` steps the watch samples the (EMA) generator and measures up to three shares in
[0, 1], each near 1 for held-out real data:

- coverage: modes captured / modes for the 2-D mixtures, class coverage for labelled images,
  modes / 1000 for stacked digits; for a translator, class coverage of its translations of
  held-out inputs or the share of A's modes sent to distinct modes of B. Reported as the
  `coverage` metric.
- balance: exp(-KL) of the mode or class histogram against the data's, the share of modes or
  classes a generator uses in effect. A generator that reaches every mode but puts most of its
  samples in one has full coverage and a low balance.
- diversity: PRDC coverage in feature space (the share of real images with a generated one
  nearby), on as many samples as real data has, over real data's own. A generator that draws
  one image per class reaches every class in perfect balance, and has almost no diversity.

It warns when coverage falls by `drop` or more from its best, or when a share is below
`threshold` once it has been above it, or from half-way through training. Early in training
every share is low, and that is not collapse.

After a run, `coverage_fall` reads the whole coverage curve (a resumed run's too, from its
tracked metric) for the late kind: modes reached, then lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gan_core.config import TrainConfig
from gan_core.metrics.evaluate import Evaluator, SampleView, coverage_from_metrics, subset_view
from gan_core.training.hooks import Hook
from gan_core.training.state import TrainState

DROP = 0.25  # a fall of coverage this large from its best is collapse: 2 of the ring's 8 modes, 3 of 10 classes

SIGNALS = {
    "coverage": "coverage {:.2f} (share of modes or classes reached)",
    "balance": "balance {:.2f} (exp(-KL) of the mode or class histogram: samples pile into few of them)",
    "diversity": "diversity {:.2f} (feature-space coverage against real data's: too little variety)",
}


@dataclass
class CollapseEvent:
    step: int
    coverage: float
    best: float
    reason: str


@dataclass(frozen=True)
class CoverageFall:
    """The deepest fall of coverage below its best so far: modes or classes a run reached, then lost."""

    peak_step: int
    peak: float
    low_step: int
    low: float
    final: float  # at the last measurement: the generator the run ends with

    def describe(self) -> str:
        end = "and ended there" if self.final <= self.low else f"and ended at {self.final:.2f}"
        return (
            f"coverage fell from {self.peak:.2f} at step {self.peak_step} to {self.low:.2f} at step {self.low_step} "
            f"{end}"
        )


def coverage_fall(history: Sequence[tuple[int, float]], drop: float = DROP) -> CoverageFall | None:
    """The deepest fall of at least `drop` below the best coverage before it, in a (step, coverage)
    curve in any order; None when coverage never fell that far."""
    points = sorted(history)
    fall, peak_step, peak = None, None, -math.inf
    for step, coverage in points:
        if coverage > peak:
            peak_step, peak = step, coverage
        elif peak - coverage >= drop - 1e-9 and (fall is None or peak - coverage > fall.peak - fall.low):
            fall = CoverageFall(peak_step, peak, step, coverage, points[-1][1])
    return fall


def watch_interval(train: TrainConfig) -> int:
    """Steps between the watch's measurements: about ten per run, on the metrics' cadence."""
    return max(train.log_every, train.steps // 10 // train.log_every * train.log_every)


def coverage_of(evaluator: Evaluator, samples: torch.Tensor, requested: torch.Tensor | None = None) -> float:
    return coverage_from_metrics(evaluator.score(evaluator.view(samples, requested)), evaluator.dataset)


def collapse_signals(evaluator: Evaluator, view: SampleView) -> dict[str, float]:
    """The shares the watch judges (see the module's docstring); those the dataset has metrics for."""
    metrics = evaluator.score(view)
    signals = {"coverage": coverage_from_metrics(metrics, evaluator.dataset)}
    kl = metrics.get("reverse_kl", metrics.get("class_kl"))
    if kl is not None:
        signals["balance"] = math.exp(-kl)
    if "coverage" in metrics:  # PRDC's: compared on as many samples as real data has, as it grows with more
        matched = evaluator.score(subset_view(view, torch.arange(min(len(view.x), evaluator.real_samples))))
        real = evaluator.real_baseline()["coverage"]
        signals["diversity"] = min(1.0, matched["coverage"] / real) if real > 0 else 1.0
    return signals


class CollapseWatch(Hook):
    def __init__(
        self,
        evaluator: Evaluator,
        every: int,
        threshold: float = 0.5,
        drop: float = DROP,
        n_samples: int = 1000,
        on_collapse: Callable[[CollapseEvent], None] | None = None,
    ) -> None:
        self.evaluator, self.every = evaluator, every
        self.threshold, self.drop, self.n_samples = threshold, drop, n_samples
        self.on_collapse = on_collapse
        self.history: list[tuple[int, float]] = []  # (step, coverage)
        self.reached: set[str] = set()  # signals that have been at or above the threshold
        self.events: list[CollapseEvent] = []

    @property
    def best(self) -> float:
        return max((c for _, c in self.history), default=0.0)

    def measure(self, step: int, state: TrainState) -> float:
        signals = collapse_signals(self.evaluator, self.evaluator.sample(state.sampler, self.n_samples))
        coverage, best = signals["coverage"], max(self.best, signals["coverage"])
        self.history.append((step, coverage))
        reason = self._reason(signals, best, halfway=2 * step >= state.config.train.steps)
        self.reached |= {name for name, share in signals.items() if share >= self.threshold}
        if reason:
            event = CollapseEvent(step, coverage, best, reason)
            self.events.append(event)
            if self.on_collapse:
                self.on_collapse(event)
        return coverage

    def _reason(self, signals: dict[str, float], best: float, halfway: bool) -> str:
        coverage = signals["coverage"]
        if best - coverage >= self.drop - 1e-9:  # 8 -> 6 modes is a fall of exactly 0.25
            return f"coverage fell from {best:.2f} to {coverage:.2f}"
        low = [
            SIGNALS[name].format(share)
            for name, share in signals.items()
            if share < self.threshold and (halfway or name in self.reached)
        ]
        return f"{'; '.join(low)} below threshold {self.threshold:.2f}" if low else ""

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        if step % self.every == 0 or step == state.config.train.steps:
            metrics["coverage"] = self.measure(step, state)
            metrics["collapsed"] = float(bool(self.events) and self.events[-1].step == step)
