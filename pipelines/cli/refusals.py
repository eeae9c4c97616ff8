"""A server that knows who is asking and says no: one line naming the server, the account and the fix.

MLflow's basic-auth app answers 401 (no or wrong credentials) or 403 (the account lacks the
permission), which its client raises as an MlflowException whose `error_code` says which;
Prefect's server answers 401 to a missing or wrong PREFECT_API_AUTH_STRING, which its client
raises as a PrefectHTTPStatusError (an httpx.HTTPStatusError carrying the response). The kind
of error and its status decide; the message is read only for the refused endpoint's path, to
name it. Passwords never appear in these lines: only the account name and the server's
address without any user:password@ part.
"""

from __future__ import annotations

import os
import re
import sys

from pipelines.tracking.server import without_credentials

# sysexits.h's EX_NOPERM: the command was refused for lack of permission; retrying will not help.
REFUSED_EXIT = 77

_ENDPOINT = re.compile(r"endpoint (/\S+)")


def refusal_line(error: BaseException) -> str | None:
    """The line for a refused request, or None when `error` is not one."""
    return _mlflow_refusal(error) or _prefect_refusal(error)


def _mlflow_refusal(error: BaseException) -> str | None:
    mlflow_errors = sys.modules.get("mlflow.exceptions")
    if mlflow_errors is None or not isinstance(error, mlflow_errors.MlflowException):
        return None
    server = f"the MLflow server {without_credentials(sys.modules['mlflow'].get_tracking_uri())}"
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if error.error_code == "UNAUTHENTICATED":
        if user is None:
            return f"{server} asks who you are: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        return f"{server} did not accept user {user!r}: check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    if error.error_code == "PERMISSION_DENIED":
        found = _ENDPOINT.search(str(error.message))
        what = f" ({found.group(1)})" if found else ""
        return (
            f"{server} refused user {user!r}: no permission for this request{what}; "
            "an MLflow admin can grant it (EDIT on the experiment, or on the registered model to promote)"
        )
    return None


def _prefect_refusal(error: BaseException) -> str | None:
    prefect_errors = sys.modules.get("prefect.exceptions")
    if prefect_errors is None or not isinstance(error, prefect_errors.PrefectHTTPStatusError):
        return None
    status = error.response.status_code
    if status not in (401, 403):
        return None
    url = error.request.url  # the server's address, whether from the environment or a Prefect profile
    server = f"the Prefect server {url.scheme}://{url.host}:{url.port}"
    settings = sys.modules["prefect.settings"]
    if status == 401 and not settings.PREFECT_API_AUTH_STRING.value():
        return f"{server} asks who you are: set PREFECT_API_AUTH_STRING to its user:password"
    return f"{server} refused the request (HTTP {status}): check PREFECT_API_AUTH_STRING (or PREFECT_API_KEY)"
