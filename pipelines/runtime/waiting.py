"""Waiting for a service that does not answer: one schedule, one way of saying so.

A command that needs the MLflow server or the Ray cluster asks first whether it answers. If it
does not, the command says so at once and why, asks again 1 s doubling to 30 s apart for as long
as its setting allows (a scheduled flow should outlive a server being restarted), says when the
service answers, and otherwise stops with one line naming the service, the cause and the
setting. Storage (storage/retry.py) and training's MLflow sender wait on the same schedule.

Checked first: Ray, MLflow and boto3 retry inside one call (seconds to minutes, silently);
none of them says that a service is down, waits for it on a schedule the caller sets, and says
when it is back, which a scheduled flow that outlives a server restart needs.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

FIRST_RETRY_S = 1.0
LAST_RETRY_S = 30.0  # the longest pause between two tries
PROBE_TIMEOUT_S = 5.0  # one probe: a service that has not answered by then counts as down

Probe = Callable[[], str | None]  # None when the service answers, else why not, in a few words


class ServiceUnavailable(RuntimeError):
    """A service did not answer for as long as the caller was willing to wait."""

    transient = True  # Prefect's task retries may still try the whole step again


def next_pause(pause: float) -> float:
    return min(2 * pause, LAST_RETRY_S)


def wait_until_answers(
    what: str,
    probe: Probe,
    wait_s: float,
    setting: str,
    log: Callable[[str], None] = print,
    unavailable: type[ServiceUnavailable] = ServiceUnavailable,
    advice: str = "",
    first_retry_s: float = FIRST_RETRY_S,
) -> None:
    """Return once `probe()` says `what` answers; raise `unavailable` after `wait_s` seconds.

    `setting` names the environment variable that holds `wait_s`; `advice` ends the error.
    """
    started, pause, told = time.monotonic(), first_retry_s, False
    while True:
        problem = probe()
        waited = time.monotonic() - started
        if problem is None:
            if told:
                log(f"{what} answers after {waited:.0f} s")
            return
        left = wait_s - waited
        if left <= 0:
            raise unavailable(
                f"{what} does not answer ({problem}); waited {waited:.0f} s ({setting}={wait_s:g}). {advice}".rstrip()
            )
        if not told:
            log(f"{what} does not answer ({problem}); waiting up to {wait_s:g} s for it ({setting})")
            told = True
        time.sleep(min(pause, left))  # the last probe comes when the wait is up
        pause = next_pause(pause)


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then the error it was raised from, and so on (each once)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def socket_reason(error: BaseException) -> str | None:
    """The words of the socket error behind `error` ('connection refused'), if there is one."""
    for cause in error_chain(error):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    return None


def tcp_probe(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when something accepts a connection at host:port; otherwise why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror:
        return f"the host name {host!r} does not resolve"
    except OSError as error:
        return socket_reason(error) or type(error).__name__.lower()
