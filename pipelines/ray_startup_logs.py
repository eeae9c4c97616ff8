"""A run waiting for room on a busy Ray cluster says so in one line a minute, not in two tracebacks.

Ray Train V2 reserves a run's workers in one placement group and gives up on it after
RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (60 s), then asks again, without limit. Each give-up is
logged by the run's controller twice with a full traceback of Ray's internals (about 65 lines a
minute, measured on a cluster whose CPUs another job held): a wait that ends well when the other
work finishes or the autoscaler adds a node, but reads like a crash. Here each give-up becomes
one line that says what is waited for and for how long. Other errors keep their tracebacks, and
so does a startup timeout that ends the run.

The controller runs in its own Ray worker process, so the filter is installed there, by the
job's `worker_process_setup_hook` (`job_runtime_env`). This module imports nothing heavy: every
worker of the job runs the hook as it starts.

Every run's controller also printed one error-level line from Ray's C++ core about Ray Train's
own preemption watcher actor (its constructor arguments are in the object store), which no user
can act on. Python logging never sees it; the driver drops it where it prints what the workers
wrote, through Ray's RAY_DEDUP_LOGS_SKIP_REGEX (`skip_ray_internal_warnings`).
"""

from __future__ import annotations

import json
import logging
import os
import re

CONTROLLER_LOGGER = "ray.train.v2._internal.execution.controller.controller"  # "Error in control loop iteration"
FAILURE_POLICY_LOGGER = "ray.train.v2._internal.execution.failure_handling.default"  # "[FailurePolicy] RETRY"
TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0
SETUP_HOOK = f"{__name__}.log_startup_timeouts_in_one_line"
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set for a driver that runs as a submitted Ray job
SKIP_REGEX_ENV = "RAY_DEDUP_LOGS_SKIP_REGEX"  # forwarded lines the driver does not print; read as Ray is imported
PREEMPTION_WATCHER_WARNING = (
    r"core_worker\.cc:\d+: Actor with class name: 'PreemptionWatcher' .*constructor arguments in the object store"
)


def startup_timeout_in(error: BaseException) -> BaseException | None:
    """The worker-group startup timeout that `error` is or wraps (Ray's ControllerError), if any.
    Matched by class name, so that a worker needs no Ray Train import to run the filter."""
    failure = getattr(error, "controller_failure", error)
    return failure if type(failure).__name__ == "WorkerGroupStartupTimeoutError" else None


class StartupTimeoutInOneLine(logging.Filter):
    """Drops the controller's traceback of a startup timeout, and turns the failure policy's
    "retry" record of it into one line; every other record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        timeout = startup_timeout_in(record.exc_info[1]) if record.exc_info else None
        if timeout is None:
            return True
        if record.name == CONTROLLER_LOGGER:
            return False  # the failure policy's record of the same error follows
        message = record.getMessage()
        if not message.startswith("[FailurePolicy] RETRY"):
            return True  # the run ends on it: keep the whole story
        record.msg, record.args = waiting_line(getattr(timeout, "num_workers", None), message), ()
        record.exc_info, record.exc_text = None, None
        return True


def waiting_line(workers: int | None, retry_message: str) -> str:
    """`no room yet for 2 worker(s) after 3 min: ...`, from the failure policy's error count."""
    count = re.search(r"Error count: (\d+)", retry_message)
    waited = int(count.group(1)) * timeout_s() if count else timeout_s()
    asked = f"{workers} worker(s)" if workers else "the worker group"
    return (
        f"no room yet for {asked} after {_duration(waited)}: other work holds the cluster's resources, "
        "or nodes are still joining; Ray Train keeps asking"
    )


def timeout_s() -> float:
    # Ray Train itself parses it with float() before it raises the timeout this line is about.
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))


def _duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def log_startup_timeouts_in_one_line() -> None:
    """The job's worker_process_setup_hook; idempotent."""
    for name in (CONTROLLER_LOGGER, FAILURE_POLICY_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, StartupTimeoutInOneLine) for f in logger.filters):
            logger.addFilter(StartupTimeoutInOneLine())


def job_runtime_env() -> dict[str, str]:
    """What `ray.init` gives the job: the hook above, unless a submitted job already names a setup
    hook of its own (Ray refuses to merge two)."""
    submitted = json.loads(os.environ.get(JOB_CONFIG_ENV) or "{}").get("runtime_env") or {}
    return {} if "worker_process_setup_hook" in submitted else {"worker_process_setup_hook": SETUP_HOOK}


def skip_ray_internal_warnings() -> None:
    """Adds Ray's preemption-watcher line to the lines the driver skips, keeping a user's own
    RAY_DEDUP_LOGS_SKIP_REGEX. Effective only before `ray` is imported in this process."""
    theirs = os.environ.get(SKIP_REGEX_ENV)
    if theirs and PREEMPTION_WATCHER_WARNING in theirs:
        return
    ours = PREEMPTION_WATCHER_WARNING
    os.environ[SKIP_REGEX_ENV] = f"(?:{theirs})|(?:{ours})" if theirs else ours
