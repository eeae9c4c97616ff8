"""Stopping a run early without losing its progress: Ctrl-C, SIGTERM (a pod evicted, a flow
cancelled) or a caller's own request.

`fit` checks a `StopRequest` between steps; once it is set, the loop finishes the step it is in,
writes a checkpoint at that step through its hooks and raises `TrainingStopped`. Running the
same training again resumes from that checkpoint, so nothing trained is lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

GRACEFUL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """Training ended early on request, after writing a checkpoint at `step`."""

    transient = False  # asked for: retrying would undo the stop
    requested_stop = True  # its message says all there is; no traceback needed

    def __init__(self, step: int, reason: str, signum: int | None = None) -> None:
        super().__init__(f"stopped at step {step} ({reason})")
        self.step, self.reason, self.signum = step, reason, signum

    @property
    def exit_code(self) -> int:
        """What a command ends with: 128 + the signal's number, as a shell reports a signal."""
        return 128 + self.signum if self.signum else 1


class StopRequest:
    """Set once, from a signal handler, another thread or another process's message; read by the
    training loop at every step (a flag, so reading it costs nothing)."""

    def __init__(self) -> None:
        self._set = threading.Event()
        self.reason = ""
        self.signum: int | None = None

    def request(self, reason: str, signum: int | None = None) -> None:
        if not self._set.is_set():
            self.reason, self.signum = reason, signum
            self._set.set()

    @property
    def requested(self) -> bool:
        return self._set.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._set.wait(timeout)

    def stopped_at(self, step: int) -> TrainingStopped:
        return TrainingStopped(step, self.reason or "stop requested", self.signum)


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest, announcement: str) -> Iterator[StopRequest]:
    """While inside, the first SIGINT or SIGTERM sets `stop` and writes `announcement` to stderr;
    a second SIGINT quits at once (KeyboardInterrupt), without the checkpoint. The handlers before
    are restored on leaving. Python delivers signals to the main thread only, so elsewhere (a Ray
    Tune trial, a Prefect task in a thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame) -> None:
        if stop.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        name = signal.Signals(signum).name
        stop.request(name, signum)
        # os.write, not print: the handler may run while the main thread is inside a print.
        os.write(2, f"{name}: {announcement}\n".encode())

    previous = {signum: signal.getsignal(signum) for signum in GRACEFUL_SIGNALS}
    for signum in GRACEFUL_SIGNALS:
        signal.signal(signum, handle)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
