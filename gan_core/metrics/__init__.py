"""Evaluation without downloaded weights: the 2-D protocol and a self-trained feature classifier."""

from gan_core.metrics.collapse import CollapseEvent, CollapseWatch, coverage_of
from gan_core.metrics.evaluate import (
    METRICS,
    Evaluator,
    coverage_from_metrics,
    flatten_report,
    generate,
    higher_is_better,
    objective_of,
    subset_view,
)

__all__ = [
    "METRICS",
    "CollapseEvent",
    "CollapseWatch",
    "Evaluator",
    "coverage_from_metrics",
    "coverage_of",
    "flatten_report",
    "generate",
    "higher_is_better",
    "objective_of",
    "subset_view",
]
