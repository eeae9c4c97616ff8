"""A run stopped on request logs its stop in one line, not in three tracebacks.

Cancelling a deployment's run (Prefect's Cancel) SIGTERMs its process: training stops after its
step with a checkpoint and raises `TrainingStopped` (a search, `SearchInterrupted`), which
Prefect's engine then logs three times with a full traceback each (the flow run, the engine,
the engine's caller): some 250 lines of Prefect's internals that read like a crash. The stop is
what was asked for, and its message ("stopped at step 268 (SIGTERM)") says all there is.
Other errors keep their tracebacks.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine")


def is_requested_stop(error: BaseException) -> bool:
    """Training or a search stopped by Ctrl-C or SIGTERM. Looked up in sys.modules: a process
    that never imported training (torch) or Tune (ray) cannot have raised their stops."""
    stopping = sys.modules.get("gan_core.training.stopping")
    tune = sys.modules.get("pipelines.tune")
    return (stopping is not None and isinstance(error, stopping.TrainingStopped)) or (
        tune is not None and isinstance(error, tune.SearchInterrupted)
    )


class WithoutTraceback(logging.Filter):
    """Drops the traceback from log records of the errors `omit` picks; their message stays."""

    def __init__(self, omit: Callable[[BaseException], bool]) -> None:
        super().__init__()
        self.omit = omit

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and self.omit(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
        return True


def log_requested_stops_in_one_line() -> None:
    """For the rest of this process (the engine logs after the flow has returned); idempotent."""
    for name in ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, WithoutTraceback) and f.omit is is_requested_stop for f in logger.filters):
            logger.addFilter(WithoutTraceback(is_requested_stop))
