"""A mode-collapse signal to watch during training: coverage of modes or classes, over time.

Every `every` steps the watch samples the (EMA) generator and measures coverage: modes
captured / modes for the 2-D mixtures, class coverage for labelled images, modes / 1000 for
stacked digits; for a translator, class coverage of its translations of held-out inputs or
the share of A's modes sent to distinct modes of B. It reports `coverage` with the other
metrics and flags collapse when coverage falls below `threshold` or drops by more than `drop`
from its best so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gan_core.metrics.evaluate import Evaluator, coverage_from_metrics
from gan_core.training.hooks import Hook
from gan_core.training.state import TrainState


@dataclass
class CollapseEvent:
    step: int
    coverage: float
    best: float
    reason: str


def coverage_of(evaluator: Evaluator, samples: torch.Tensor, requested: torch.Tensor | None = None) -> float:
    return coverage_from_metrics(evaluator.score(evaluator.view(samples, requested)), evaluator.dataset)


class CollapseWatch(Hook):
    def __init__(
        self,
        evaluator: Evaluator,
        every: int,
        threshold: float = 0.5,
        drop: float = 0.25,
        n_samples: int = 1000,
        on_collapse: Callable[[CollapseEvent], None] | None = None,
    ) -> None:
        self.evaluator, self.every = evaluator, every
        self.threshold, self.drop, self.n_samples = threshold, drop, n_samples
        self.on_collapse = on_collapse
        self.history: list[tuple[int, float]] = []
        self.events: list[CollapseEvent] = []

    @property
    def best(self) -> float:
        return max((c for _, c in self.history), default=0.0)

    def measure(self, step: int, state: TrainState) -> float:
        view = self.evaluator.sample(state.sampler, self.n_samples)
        coverage = coverage_from_metrics(self.evaluator.score(view), self.evaluator.dataset)
        best = max(self.best, coverage)
        self.history.append((step, coverage))
        reason = ""
        if coverage < self.threshold:
            reason = f"coverage {coverage:.2f} below threshold {self.threshold:.2f}"
        elif best - coverage > self.drop:
            reason = f"coverage fell from {best:.2f} to {coverage:.2f}"
        if reason:
            event = CollapseEvent(step, coverage, best, reason)
            self.events.append(event)
            if self.on_collapse:
                self.on_collapse(event)
        return coverage

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        if step % self.every == 0 or step == state.config.train.steps:
            metrics["coverage"] = self.measure(step, state)
            metrics["collapsed"] = float(bool(self.events) and self.events[-1].step == step)
