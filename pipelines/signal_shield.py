"""Starting helper processes (a local Ray cluster, Prefect's ephemeral server) out of reach of
signals meant for the command.

A terminal's Ctrl-C goes to every process of the foreground group, and so does the SIGTERM of
GNU `timeout`, of systemd stopping a unit, and of a Prefect worker cancelling a flow run (it
signals the run's whole process group). The helpers this command started are in that group: a
local Ray cluster's GCS and raylet shut down at once on SIGTERM, so training on it could no
longer stop with a checkpoint, and the command hung until it was killed (measured with a
cancelled deployment run: 30 s, then SIGKILL, with no checkpoint). A child started while a
signal is blocked in the starting thread keeps it blocked (the mask survives fork and exec), so
the signal stays with the command, which stops its work in order and then stops the helpers
itself (`ray.shutdown()` sends SIGTERM, waits a second, then SIGKILL, which no mask holds).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def children_deaf_to(signals: frozenset[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Processes started inside this block ignore `signals` sent to the process group."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a signal that came meanwhile arrives now
