"""Log filters: what the libraries log at length, said in one line.

Each filter keeps every record it is not about. Checked first: Prefect and Ray offer log levels
and Ray a regex of forwarded lines to skip (RAY_DEDUP_LOGS_SKIP_REGEX, used below), but no way
to drop the traceback of one kind of error while keeping its message. Two filters name Ray
Train's private loggers (their module paths); Ray is pinned to its minor version for them, and
if a name moves, the lines come back and nothing else changes.

- A stop someone asked for (Ctrl-C, a cancelled deployment run) ends training with
  `TrainingStopped` or a search with `SearchInterrupted`; Prefect's engine logged each three
  times with a full traceback (some 250 lines that read like a crash).
- Ray Train's controller logs every worker-group startup timeout (a busy cluster: it asks again
  every RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S) twice with a traceback; here one line says what
  is waited for. A timeout that ends the run keeps its story.
- Ray Train logs every `ray.train.report` with the whole report (500+ characters per checkpoint),
  and every checkpoint's storage path (200+ characters; the run's checkpoints are listed by
  `ganpipe` where they matter: resume, the run's summary).
- Ray's C++ core prints an error-level line about Ray Train's own preemption watcher actor in
  every run, which no user can act on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

PREFECT_ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine")
RAY_CONTROLLER_LOGGER = "ray.train.v2._internal.execution.controller.controller"
RAY_FAILURE_POLICY_LOGGER = "ray.train.v2._internal.execution.failure_handling.default"
RAY_REPORT_LOGGER_MODULE = "ray.train.v2._internal.execution.context"  # its logger is named after the file
# Ray Train's storage (its workers) and the older one that Ray Tune's trials still use.
RAY_STORAGE_LOGGERS = ("ray.train.v2._internal.execution.storage", "ray.train._internal.storage")
RAY_SKIP_REGEX = "RAY_DEDUP_LOGS_SKIP_REGEX"  # read as Ray is imported
PREEMPTION_WATCHER_LINE = r"core_worker\.cc:\d+: Actor with class name: 'PreemptionWatcher' .*object store"
RAY_SETUP_HOOK = f"{__name__}.ray_worker_setup"


def is_requested_stop(error: BaseException) -> bool:
    """Training or a search that stopped because someone asked (the error class says so)."""
    return getattr(error, "requested_stop", False) is True


class WithoutTraceback(logging.Filter):
    """Drops the traceback from records of the errors `omit` picks; their message stays."""

    def __init__(self, omit: Callable[[BaseException], bool]) -> None:
        super().__init__()
        self.omit = omit

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and self.omit(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
        return True


def add_filter_once(logger_name: str, new: logging.Filter) -> None:
    logger = logging.getLogger(logger_name)
    if not any(type(f) is type(new) and vars(f) == vars(new) for f in logger.filters):
        logger.addFilter(new)


def log_requested_stops_in_one_line() -> None:
    """For the rest of this process (Prefect's engine logs after the flow has returned)."""
    for name in PREFECT_ENGINE_LOGGERS:
        add_filter_once(name, WithoutTraceback(is_requested_stop))


class StartupTimeoutInOneLine(logging.Filter):
    """Ray Train's startup-timeout retries as one line; matched by class name, so that the
    filter needs no Ray import in the worker that runs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        failure = getattr(error, "controller_failure", error)
        if type(failure).__name__ != "WorkerGroupStartupTimeoutError":
            return True
        if record.name == RAY_CONTROLLER_LOGGER:
            return False  # the failure policy's record of the same error follows
        if not record.getMessage().startswith("[FailurePolicy] RETRY"):
            return True  # the run ends on it: keep the whole story
        workers = getattr(failure, "num_workers", None)
        record.msg = (
            f"no room yet for {workers or 'the'} worker(s): other work holds the cluster's resources, "
            "or nodes are still joining; Ray Train keeps asking"
        )
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


class WithoutLinesStartingWith(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def ray_worker_setup() -> None:
    """Every Ray worker process of the job runs this as it starts (cluster/job_env.py)."""
    for name in (RAY_CONTROLLER_LOGGER, RAY_FAILURE_POLICY_LOGGER):
        add_filter_once(name, StartupTimeoutInOneLine())
    for name in RAY_STORAGE_LOGGERS:
        add_filter_once(name, WithoutLinesStartingWith("Checkpoint successfully created"))
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # a Ray without it: the lines stay
        return
    add_filter_once(context.__file__, WithoutLinesStartingWith("Reporting training result"))


def skip_ray_internal_lines() -> None:
    """Adds the preemption watcher's line to the lines Ray's driver does not print, keeping a
    user's own RAY_DEDUP_LOGS_SKIP_REGEX. Effective only before `ray` is imported."""
    theirs = os.environ.get(RAY_SKIP_REGEX)
    if theirs and PREEMPTION_WATCHER_LINE in theirs:
        return
    os.environ[RAY_SKIP_REGEX] = f"(?:{theirs})|(?:{PREEMPTION_WATCHER_LINE})" if theirs else PREEMPTION_WATCHER_LINE
