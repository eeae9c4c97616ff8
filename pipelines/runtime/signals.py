"""Stop signals where the libraries' own handling falls short.

Three small mechanisms, each for a case Ray or Prefect does not cover (checked against Ray
2.60 and Prefect 3.9; Ray is pinned to its minor version for this reason):

- `children_deaf_to`: helpers this command starts (a local Ray cluster, Prefect's ephemeral
  server) keep SIGINT/SIGTERM blocked. A terminal's Ctrl-C, GNU `timeout`, systemd and a
  Prefect worker cancelling a flow run signal the whole process group; the local cluster's GCS
  and raylet shut down at once on SIGTERM, so training could no longer stop with a checkpoint.
  A mask survives fork and exec, so the signal stays with the command, which stops its work in
  order and then the helpers. (Ray blocks SIGINT in the processes it starts, not SIGTERM.)
- `noticing_signals`: Ray Tune answers Ctrl-C by saving the experiment and returning from
  `Tuner.fit()` as if the search had ended. Python writes every signal it handles to the
  "wakeup fd", whoever's handler runs, so a socket there tells us afterwards that SIGINT came.
- `sigterm_as_ctrl_c`: Tune has no such answer for SIGTERM (Ray's driver handler exits at
  once); passed on as SIGINT, it ends the search the way Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def children_deaf_to(signals: frozenset[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Processes started inside this block ignore `signals` sent to the process group."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a signal that came meanwhile arrives now


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
