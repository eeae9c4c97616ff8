"""Noticing a Ctrl-C that someone else's signal handler answers, and answering SIGTERM as Ctrl-C.

Ray Tune answers Ctrl-C by saving the experiment and returning from `Tuner.fit()` as if the
search had ended, with the trials it cut short marked TERMINATED like finished ones. Python
writes the number of every signal it handles to the "wakeup fd", whichever handler runs, so a
socket set as that fd tells us afterwards whether SIGINT came.

Tune has no such answer for SIGTERM (a pod evicted, `timeout`, a Prefect worker cancelling the
flow run): Ray's driver handler exits at once, leaving the search's MLflow runs RUNNING. Passed on
as SIGINT, it ends the search the way Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class SignalsSeen:
    numbers: bytes = b""

    @property
    def stop_signal(self) -> signal.Signals | None:
        """SIGTERM if it came (passed on as SIGINT, so both are seen), else SIGINT if it came, else None."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signum in self.numbers:
                return signum
        return None


@contextlib.contextmanager
def noticing_signals() -> Iterator[SignalsSeen]:
    """While inside, record the signals the process handles (main thread only; elsewhere, none)."""
    seen = SignalsSeen()
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    try:
        before = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread: signals are not delivered here anyway
        reader.close()
        writer.close()
        yield seen
        return
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(before)
        with contextlib.suppress(BlockingIOError):
            seen.numbers = reader.recv(4096)
        reader.close()
        writer.close()


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While inside, SIGTERM is answered by whatever answers SIGINT (main thread only)."""
    try:
        before = signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
