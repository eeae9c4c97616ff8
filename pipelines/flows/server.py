"""Prefect's ephemeral API server, out of reach of the terminal's Ctrl-C.

Without PREFECT_API_URL, Prefect runs its API server as a child process of the command. A
terminal sends Ctrl-C to every process of its foreground group, so that server died at once
while the flow was still stopping: the flow could no longer record how it ended, and Prefect's
client retried for minutes (162 s measured) before the command gave up with tracebacks.
Started here with SIGINT blocked, the server inherits the block (a signal mask survives fork
and exec) and never sees Ctrl-C; Prefect still stops it with SIGTERM when the command exits.
SIGTERM is not blocked for it: Prefect's stop would then wait 5 s and kill it, at every exit.
"""

from __future__ import annotations

import signal

from pipelines.runtime.signals import children_deaf_to

STARTUP_TIMEOUT_S = 120


def start_ephemeral_server_deaf_to_ctrl_c() -> None:
    """Start the server Prefect would start at its first request, unless a real one is configured."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    )

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    # Prefect waits 20 s by default. A first start creates and migrates its database, which took
    # 18-26 s on 2 cores, and `make demo` on a fresh machine failed once with "Timed out while
    # attempting to connect to ephemeral Prefect API server".
    timeout = max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), STARTUP_TIMEOUT_S)
    with children_deaf_to(frozenset({signal.SIGINT})):
        SubprocessASGIServer().start(timeout=timeout)  # the instance Prefect's clients will find and reuse
