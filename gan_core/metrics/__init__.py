"""Evaluation without downloaded weights: the 2-D protocol and a self-trained feature classifier."""

from gan_core.metrics.collapse import CollapseEvent, CollapseWatch, coverage_of
from gan_core.metrics.evaluate import (
    MATCHED,
    METRICS,
    Evaluator,
    coverage_from_metrics,
    flatten_report,
    generate,
    higher_is_better,
    metrics_table,
    objective_of,
    subset_view,
    versus_real,
)

__all__ = [
    "MATCHED",
    "METRICS",
    "CollapseEvent",
    "CollapseWatch",
    "Evaluator",
    "coverage_from_metrics",
    "coverage_of",
    "flatten_report",
    "generate",
    "higher_is_better",
    "metrics_table",
    "objective_of",
    "subset_view",
    "versus_real",
]
