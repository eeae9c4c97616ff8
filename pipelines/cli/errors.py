"""How `ganpipe` ends on an error: one line naming what was wrong, and an exit status.

Bad input (a config value, a missing file, a name that is not there) ends with status 2; a
service that did not answer too; a divergence with 1; a stop someone asked for with 128 + the
signal, as a shell reports it; a run busy elsewhere with 75 (try again later); a server that
refused the account (MLflow's or Prefect's authentication) with 77 (refusals.py). Errors of
modules that take seconds to import (torch, pyarrow, MLflow) are looked up in `sys.modules`: a
command that never imported one cannot have raised its errors, and `ganpipe --help` stays fast.
Anything else keeps its traceback: it is a bug to report.
"""

from __future__ import annotations

import signal
import sys

from gan_core.config import ConfigError
from pipelines.cli.refusals import REFUSED_EXIT, refusal_line
from pipelines.runtime.logs import is_requested_stop
from pipelines.runtime.waiting import ServiceUnavailable

BAD_INPUT = (ConfigError, FileNotFoundError, ValueError, LookupError)


def one_line_for(error: BaseException) -> tuple[str, int] | None:
    """(the line, the exit status) for an error `main` reports in one line; None for the others."""
    if isinstance(error, (*BAD_INPUT, ServiceUnavailable)):
        return f"error: {error}", 2
    if isinstance(error, FloatingPointError):  # NonFiniteLossError
        return f"training diverged: {error}", 1
    if isinstance(error, KeyboardInterrupt):  # a second Ctrl-C while training stops, or one before it starts
        return "interrupted", 130
    if isinstance(error, SystemExit) and error.code == signal.SIGTERM:
        return "stopped (SIGTERM)", 128 + signal.SIGTERM  # Ray's SIGTERM handler, outside training
    lock = sys.modules.get("gan_core.outputs.run_lock")
    if is_requested_stop(error) or (lock is not None and isinstance(error, lock.RunBusy)):  # busy elsewhere
        return str(error), error.exit_code
    refused = refusal_line(error)
    if refused is not None:
        return f"error: {refused}", REFUSED_EXIT
    storage = sys.modules.get("pipelines.storage.s3")
    if storage is not None and isinstance(error, storage.StorageError):
        return f"storage error: {error}", 2
    mlflow_errors = sys.modules.get("mlflow.exceptions")
    known = mlflow_errors is not None and isinstance(error, mlflow_errors.MlflowException)
    if known and error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):  # a URI typed wrong
        return f"error: MLflow: {str(error.message).strip().splitlines()[0]}", 2
    return None


def reported_in_one_line(error: BaseException) -> bool:
    """Whether `main` ends with one line about this error (no traceback)."""
    return isinstance(error, Exception) and one_line_for(error) is not None
