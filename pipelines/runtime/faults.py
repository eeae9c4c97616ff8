"""Which failures are worth waiting out, decided by the error's type, never by its words.

A service that did not answer (a restart, a network fault, a busy server) answers later; a
corrupt file, an invalid config or a failed gate gives the same answer every time, so trying
again only hides the error for longer. An error says which it is:

- by a `transient` attribute (the project's own errors and gan_core's carry one);
- by being a permanent kind (bad data, bad config, a missing file, a requested stop);
- by being one of the client libraries' connection or timeout classes (requests, botocore,
  the standard library's), or an MLflow answer whose code means "later" (HTTP 503, 429).

The chain of causes is read first to last, and the first error that knows decides. Prefect's
task retries (flows/retries.py) and training's MLflow sender (tracking/sender.py) ask here.
Checked: Prefect's `retry_condition_fn` takes any predicate but ships none; tenacity and
urllib3 classify by type too, each for its own library only.
"""

from __future__ import annotations

import sqlite3

from gan_core.config import ConfigError
from gan_core.data.idx import IdxFormatError
from gan_core.data.validation import DataValidationError
from gan_core.training.stopping import TrainingStopped
from pipelines.runtime.waiting import error_chain

# TrainingStopped: someone asked training to stop (Ctrl-C, a cancelled flow); retrying would undo it.
PERMANENT = (DataValidationError, IdxFormatError, ConfigError, FileNotFoundError, KeyError, TypeError, TrainingStopped)
# MLflow's error codes for an answer that means "ask again later" (HTTP 503 and 429).
LATER = ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")


def is_transient(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, is a service that did not answer."""
    for cause in error_chain(error):
        verdict = _classify(cause)
        if verdict is not None:
            return verdict
    return False


def _classify(error: BaseException) -> bool | None:
    knows = getattr(error, "transient", None)
    if isinstance(knows, bool):
        return knows
    if isinstance(error, PERMANENT):
        return False
    if isinstance(error, transient_types()):
        return True
    if getattr(error, "error_code", None) in LATER:  # an MlflowException
        return True
    return None


def transient_types() -> tuple[type[BaseException], ...]:
    """The client libraries' classes for "the service did not answer". sqlite3's OperationalError
    is the embedded SQLite store busy with another writer ("database is locked") or its disk."""
    # Here, not at the top: a Ray worker with local storage and tracking off needs neither
    # library (bench/ray_gpu.py runs on a machine that has neither).
    import botocore.exceptions
    import requests

    return (
        ConnectionError,
        TimeoutError,
        sqlite3.OperationalError,
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.RetryError,  # urllib3 gave up on a server that kept answering 5xx
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
    )


def first_line(error: BaseException) -> str:
    """The first line of an error's message, short enough for a log line."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]
