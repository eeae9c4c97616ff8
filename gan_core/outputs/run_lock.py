"""One training of a run folder at a time.

Two `ganpipe train --local` of the same name (two terminals, a cron job beside a person) would
resume from the same checkpoint and overwrite each other's checkpoints, samples and metrics.
The trainer holds an exclusive lock on `FOLDER/.training.lock`; the operating system drops it
when the process ends, however it ends, so a killed run never leaves it behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".training.lock"


class RunBusy(RuntimeError):
    """Another process is training this run."""

    transient = False  # a flow's quick retries would find it busy too
    exit_code = 75  # EX_TEMPFAIL: try again later


@contextlib.contextmanager
def training_lock(folder: Path) -> Iterator[None]:
    """While inside, this process alone trains in `folder`; raises RunBusy if another does. A folder
    made here and left holding nothing but the lock (a run that could not start) is removed."""
    made_here = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise RunBusy(f"{folder} is in use by {holder}, training it; wait for it to end or stop it") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"process {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
            if made_here and [p.name for p in folder.iterdir()] == [LOCK_FILE]:  # still ours: we hold the lock
                (folder / LOCK_FILE).unlink()
                folder.rmdir()
