"""Is the MLflow tracking server there? Asked before a command starts work that needs it.

Left to itself, MLflow's client retries a server that does not answer for about four minutes
(measured: `ganpipe train` against a closed port sat silent for 4 min 14 s, then ended in a
traceback). Asking first says at once what is wrong, waits out a restart for up to
GANPIPE_TRACKING_WAIT_S (a scheduled flow should outlive a server being upgraded), says when
the server answers again, and otherwise ends with one line naming the URI and the cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import requests

from pipelines.runtime.waiting import FIRST_RETRY_S, PROBE_TIMEOUT_S, ServiceUnavailable, wait_until_answers

# What a proxy or load balancer answers for a server behind it that is down or restarting.
PROXY_SAYS_DOWN = (502, 503, 504)
# MLflow's error codes for a server that refused the account (basic-auth's 401 and 403): not a
# missing model or alias, whatever the request was; the command ends naming the account (cli/refusals.py).
REFUSED = ("UNAUTHENTICATED", "PERMISSION_DENIED")


class TrackingUnavailable(ServiceUnavailable):
    """The tracking server did not answer for as long as the caller was willing to wait."""


def wait_for_server(
    tracking_uri: str,
    wait_s: float,
    log: Callable[[str], None] = print,
    first_retry_s: float = FIRST_RETRY_S,
    probe_timeout_s: float = PROBE_TIMEOUT_S,
) -> None:
    """Return once the server at `tracking_uri` answers; raise TrackingUnavailable after `wait_s`.

    Only http(s) servers are asked: sqlite:, file: and other local stores have nobody to wait for.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    wait_until_answers(
        f"the MLflow tracking server {without_credentials(tracking_uri)}",
        lambda: probe(tracking_uri, probe_timeout_s),
        wait_s,
        "GANPIPE_TRACKING_WAIT_S",
        log,
        TrackingUnavailable,
        "Start it, or set MLFLOW_TRACKING_URI to one that runs.",
        first_retry_s,
    )


def probe(tracking_uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the server answers (whatever it says); otherwise why it did not, in a few words."""

    try:
        response = requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s)
    except requests.exceptions.SSLError:
        return None  # something answers; TLS settings are MLflow's client's business
    except requests.exceptions.Timeout:
        return f"no answer within {timeout_s:g} s"
    except requests.exceptions.ConnectionError as error:
        return _connection_problem(error)
    if response.status_code in PROXY_SAYS_DOWN:
        return f"HTTP {response.status_code} from the proxy in front of it"
    return None  # even a 401 or a 404 comes from a server that is up; MLflow reports those itself


def _connection_problem(error: Exception) -> str:
    """'connection refused', 'name or service not known', ...: the OS's words, not urllib3's."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    return found.group(1).strip().lower() if found else type(error).__name__


def without_credentials(uri: str) -> str:
    """The URI as it may be logged: a user:password@ part becomes ***@."""
    return re.sub(r"//[^/@]+@", "//***@", uri, count=1)
