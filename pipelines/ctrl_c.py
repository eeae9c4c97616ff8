"""Noticing a Ctrl-C that someone else's signal handler answers.

Ray Tune answers Ctrl-C by saving the experiment and returning from `Tuner.fit()` as if the
search had ended, with the trials it cut short marked TERMINATED like finished ones. Python
writes the number of every signal it handles to the "wakeup fd", whichever handler runs, so a
socket set as that fd tells us afterwards whether SIGINT came.
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
    def ctrl_c(self) -> bool:
        return signal.SIGINT in self.numbers


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
