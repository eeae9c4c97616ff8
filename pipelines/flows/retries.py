"""Prefect's retry options for the pipeline's tasks: transient faults (runtime/faults.py) are
retried, bad data and bad config never.
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from pipelines.runtime.faults import is_transient


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry only transient faults."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 - the failure is what we classify
        return is_transient(error)
    return False


# Task options for any step that talks to storage or the tracking server: waits 2, 4, 8 s.
TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": retry_if_transient,
}
