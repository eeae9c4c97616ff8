"""Ctrl-C or SIGTERM at `ganpipe train`'s driver reaches the Ray workers, which stop with a checkpoint.

The driver cannot signal workers that may run on other machines, so it leaves a marker in the
run's storage folder (the name is this attempt's own) and rank 0 looks for it every second.
gan_core's loop then has the ranks agree on the stop (they ask one another about once a
second), write a checkpoint of that step and end; re-running the same command resumes from it.

Checked: Ray Train V2 offers the driver no way to ask its workers to stop after a step (its own
Ctrl-C handler aborts the run, losing the steps since the last checkpoint), and a Ray actor as
the flag would be one more process to keep alive through a node's loss; storage is already
where every rank can look.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from gan_core.training import StopRequest
from pipelines.runtime.background import in_background
from pipelines.storage.location import Storage

LOOK_EVERY_S = 1.0

log = logging.getLogger(__name__)


@contextlib.contextmanager
def relayed_to_workers(stop: StopRequest, folder: Storage, marker: str) -> Iterator[None]:
    """Driver: while inside, a request to `stop` (from a signal) is written as `folder/marker`.
    The marker is removed on leaving, whichever way training ended."""

    def relay(finished: threading.Event) -> None:
        while not finished.is_set():
            if stop.wait(0.2):
                folder.write_bytes(marker, stop.reason.encode())
                return

    try:
        # Joined on leaving: a marker being written must not outlive the run it stops.
        with in_background(relay, "ganpipe-stop-relay", join_s=30):
            yield
    finally:
        with contextlib.suppress(Exception):  # storage down: the next attempt has a name of its own
            if folder.exists(marker):
                folder.delete(marker)


@contextlib.contextmanager
def watching_for_stop(stop: StopRequest, folder: Storage, marker: str) -> Iterator[None]:
    """Worker (rank 0): while inside, `stop` is requested once `folder/marker` appears."""

    def watch(finished: threading.Event) -> None:
        while not finished.wait(LOOK_EVERY_S):
            try:
                if not folder.exists(marker):
                    continue
                reason = folder.read_bytes(marker).decode()
            except Exception as error:  # storage down: the next look may find it
                log.debug("looking for %s: %s", marker, error)
                continue
            stop.request(f"{reason} at the driver")
            return

    with in_background(watch, "ganpipe-stop-watch"):
        yield
