"""A busy cluster's startup timeouts: one line each from Ray Train's own loggers, other errors whole;
Ray's line about its own preemption watcher not printed."""

from __future__ import annotations

import logging
import os

import pytest
from ray.train import FailureConfig
from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
from ray.train.v2._internal.execution.failure_handling.default import DefaultFailurePolicy
from ray.train.v2.api.exceptions import ControllerError

from pipelines.runtime.logs import (
    RAY_CONTROLLER_LOGGER,
    RAY_FAILURE_POLICY_LOGGER,
    RAY_SKIP_REGEX,
    RAY_STORAGE_LOGGERS,
    StartupTimeoutInOneLine,
    WithoutLinesStartingWith,
    ray_worker_setup,
    skip_ray_internal_lines,
)

CONTROLLER_LOGGER, FAILURE_POLICY_LOGGER = RAY_CONTROLLER_LOGGER, RAY_FAILURE_POLICY_LOGGER


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture()
def controller_logs():
    """Ray Train's two loggers with the job's hook installed, as in the controller's process."""
    loggers = [logging.getLogger(name) for name in (CONTROLLER_LOGGER, FAILURE_POLICY_LOGGER)]
    kept, saved = Kept(), [(lg.level, list(lg.filters)) for lg in loggers]
    for logger in loggers:
        logger.addHandler(kept)
        logger.setLevel(logging.INFO)
    ray_worker_setup()
    ray_worker_setup()  # idempotent: each Ray worker may run it once, tests twice
    assert [sum(isinstance(f, StartupTimeoutInOneLine) for f in lg.filters) for lg in loggers] == [1, 1]
    yield kept.records
    for logger, (level, filters) in zip(loggers, saved, strict=True):
        logger.removeHandler(kept)
        logger.setLevel(level)
        logger.filters[:] = filters


def _controller_step_fails(policy: DefaultFailurePolicy, error: Exception):
    """What Ray Train's controller does with an error of its step: log it, then ask the policy."""
    try:
        raise error
    except Exception as raised:
        logging.getLogger(CONTROLLER_LOGGER).exception("Error in control loop iteration: %s", raised)
        return policy.make_decision(training_failed_error=ControllerError(raised))


def test_each_startup_timeout_that_ray_retries_is_one_line(controller_logs, monkeypatch):
    monkeypatch.delenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", raising=False)
    policy = DefaultFailurePolicy(FailureConfig())
    for _ in range(3):
        assert _controller_step_fails(policy, WorkerGroupStartupTimeoutError(num_workers=2)).value == "RETRY"
    lines = [(r.name, r.getMessage(), r.exc_info) for r in controller_logs]
    waiting = "no room yet for 2 worker(s): other work holds the cluster's resources, or nodes are still joining"
    assert [name for name, _, _ in lines] == [FAILURE_POLICY_LOGGER] * 3
    assert all(message.startswith(waiting) for _, message, _ in lines)
    assert all(exc_info is None for _, _, exc_info in lines)


def test_other_errors_and_a_timeout_that_ends_the_run_keep_their_tracebacks(controller_logs):
    assert _controller_step_fails(DefaultFailurePolicy(FailureConfig()), RuntimeError("boom")).value == "RAISE"
    no_retries = DefaultFailurePolicy(FailureConfig(controller_failure_limit=0))
    assert _controller_step_fails(no_retries, WorkerGroupStartupTimeoutError(num_workers=1)).value == "RAISE"
    messages = [(r.name, r.getMessage().splitlines()[0]) for r in controller_logs]
    assert messages == [
        (CONTROLLER_LOGGER, "Error in control loop iteration: boom"),
        (FAILURE_POLICY_LOGGER, "[FailurePolicy] RAISE"),
        (FAILURE_POLICY_LOGGER, "[FailurePolicy] RAISE"),  # the timeout's own controller record is dropped
    ]
    assert all(r.exc_info and r.exc_info[1] is not None for r in controller_logs)


WATCHER_LINE = (
    "[2026-12-03 12:57:09,278 E 16315 16353] core_worker.cc:2465: Actor with class name: 'PreemptionWatcher' and "
    "ID: '18f92d500178d2e3876e63df01000000' has constructor arguments in the object store and max_restarts > 0. "
    "If the arguments in the object store go out of scope or are lost, the actor restart will fail."
)
OTHER_CORE_ERROR = "[2026-12-03 12:57:10,001 E 16315 16353] core_worker.cc:912: Failed to register worker to Raylet"


def _printed(lines: list[str]) -> list[str]:
    """What the driver prints of a batch of lines a worker wrote, skipping as the environment says."""
    from ray._private.ray_logging import LogDeduplicator

    printed = LogDeduplicator(5, None, os.environ[RAY_SKIP_REGEX]).deduplicate({"ip": "h", "pid": 1, "lines": lines})
    return [line for batch in printed for line in batch["lines"]]


def test_the_driver_does_not_print_rays_preemption_watcher_line_and_keeps_a_users_skips(monkeypatch):
    monkeypatch.delenv(RAY_SKIP_REGEX, raising=False)
    skip_ray_internal_lines()
    assert _printed([WATCHER_LINE, OTHER_CORE_ERROR, "step 20/20"]) == [OTHER_CORE_ERROR, "step 20/20"]

    monkeypatch.setenv(RAY_SKIP_REGEX, "^DEBUG")
    skip_ray_internal_lines()
    skip_ray_internal_lines()  # once only: the CLI and the flow both call it
    assert _printed([WATCHER_LINE, "DEBUG x", OTHER_CORE_ERROR]) == [OTHER_CORE_ERROR]
    assert os.environ[RAY_SKIP_REGEX].count("PreemptionWatcher") == 1


def test_ray_train_report_and_checkpoint_lines_are_hidden_and_its_other_lines_kept(caplog):
    import logging

    from ray.train.v2._internal.execution import context

    ray_worker_setup()
    ray_worker_setup()  # twice: one filter is enough
    report_logger, storage_logger = logging.getLogger(context.__file__), logging.getLogger(RAY_STORAGE_LOGGERS[0])
    with caplog.at_level(logging.INFO):
        report_logger.info("Reporting training result 1: TrainingReport(checkpoint=..., metrics={'step': 100})")
        storage_logger.info("Checkpoint successfully created at: Checkpoint(path=/x)")
        storage_logger.info("Deleting checkpoint_2026 (kept: 2)")
        report_logger.warning("a warning")
    assert [r.getMessage() for r in caplog.records] == ["Deleting checkpoint_2026 (kept: 2)", "a warning"]
    assert sum(isinstance(f, WithoutLinesStartingWith) for f in report_logger.filters) == 1
    assert sum(isinstance(f, WithoutLinesStartingWith) for f in storage_logger.filters) == 1
