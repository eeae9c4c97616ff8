"""Which failures are worth waiting out: a service that did not answer, never bad data or bad config.

A storage endpoint or tracking server that is down for a moment answers again later; a corrupt
file, an invalid config or a failed promotion gate gives the same answer every time, so trying
again only hides the error for longer. Prefect's task retries (`flows/retries.py`), the
background MLflow sender of training workers (`tracking_queue.py`) and the storage filesystem
(`storage_retry.py`) all ask `is_transient`.
"""

from __future__ import annotations

from gan_core.config import ConfigError
from gan_core.data.idx import IdxFormatError
from gan_core.data.validation import DataValidationError
from gan_core.training.stopping import TrainingStopped
from pipelines.waiting import error_chain

# TrainingStopped: someone asked training to stop (Ctrl-C, a cancelled flow); retrying would undo it.
PERMANENT = (DataValidationError, IdxFormatError, ConfigError, FileNotFoundError, KeyError, TypeError, TrainingStopped)
# Words in the messages of MLflow and pyarrow when the server could not be reached (or was busy).
UNREACHABLE_HINTS = (
    "connection refused",
    "max retries exceeded",
    "failed to establish a new connection",
    "temporarily unavailable",
    "couldn't connect",
    "network_connection",  # pyarrow's S3 client: AWS Error NETWORK_CONNECTION
    "slow_down",  # ... and a busy S3 endpoint: SLOW_DOWN, SERVICE_UNAVAILABLE (HTTP 503)
    "service_unavailable",
    "timed out",
    "timeout was reached",
    "database is locked",  # the embedded SQLite store, busy with another writer for a moment
)


def is_transient(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, says a service was unreachable."""
    for cause in error_chain(error):
        verdict = _classify(cause)
        if verdict is not None:
            return verdict
    return False


def _classify(error: BaseException) -> bool | None:
    knows = getattr(error, "transient", None)  # StorageError and the like say which they are
    if isinstance(knows, bool):
        return knows
    if isinstance(error, PERMANENT):
        return False
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if _is_network_error_of_a_client_library(error):
        return True
    message = str(error).lower()
    if any(hint in message for hint in UNREACHABLE_HINTS):
        return True
    return None


def _is_network_error_of_a_client_library(error: BaseException) -> bool:
    import botocore.exceptions
    import requests

    network = (
        requests.ConnectionError,
        requests.Timeout,
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
    )
    return isinstance(error, network)


def first_line(error: BaseException) -> str:
    """The first line of an error's message, short enough for a log line."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]
