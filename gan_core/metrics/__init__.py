"""Evaluation without downloaded weights: the 2-D protocol and a self-trained feature classifier."""

from gan_core.metrics.collapse import (
    CollapseEvent,
    CollapseWatch,
    CoverageFall,
    coverage_fall,
    coverage_of,
    watch_interval,
)
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
    "CoverageFall",
    "coverage_fall",
    "watch_interval",
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
