"""One training of a run at a time.

Two trainings of the same run (a scheduled flow that outlasted its interval, a manual run beside
a scheduled one, the same command in two terminals) would resume from the same checkpoint, write
into the same folder and log to the same MLflow run, each overwriting the other's work. So the
driver holds a lease in the run's storage folder (`lease.json`: who holds it, where, since when),
renewed every RENEW_S seconds while it trains, evaluates and publishes. Another driver that finds
a lease renewed less than STALE_S seconds ago stops with one line naming the holder. A lease
whose holder died (kill -9, a lost node) is taken over once it has gone STALE_S seconds without
renewal, or at once on the holder's own machine when its process is gone.

Storage offers no atomic create-if-absent, so two drivers starting within a moment of each other
are told apart after the fact: each writes its lease, waits SETTLE_S and reads it back; only the
one whose lease is there goes on. Ages compare the holder's clock with the reader's, so machines
need roughly synchronised clocks (NTP), well within STALE_S.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from gan_core.outputs.run_lock import RunBusy
from pipelines.ray_train import process_exists
from pipelines.stop_relay import in_background
from pipelines.storage import Storage

LEASE_FILE = "lease.json"
RENEW_S = 15.0
STALE_S = 90.0
SETTLE_S = 2.0

_HELD_HERE: set[str] = set()  # owners of the leases this process holds now


@dataclass(frozen=True)
class Lease:
    owner: str  # unique per acquisition
    host: str
    pid: int
    since: float  # epoch seconds, the holder's clock
    renewed: float

    def age(self, now: float) -> float:
        return now - self.renewed

    def holder_is_gone(self, now: float) -> bool:
        """Not renewed for STALE_S, or its process no longer runs on this very machine, or it is
        this process's own, left by an earlier attempt whose release failed (storage was down)."""
        if self.age(now) > STALE_S:
            return True
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return self.owner not in _HELD_HERE
        return not process_exists(self.pid)

    def describe(self, now: float) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"process {self.pid} on {self.host} (since {started}, renewed {self.age(now):.0f} s ago)"


@contextlib.contextmanager
def holding_run(folder: Storage, what: str, log: Callable[[str], None] = print) -> Iterator[Lease]:
    """While inside, this process holds the lease of `what` ("run NAME", "search NAME") in `folder`;
    raises RunBusy if another process does."""
    now = time.time()
    held = read_lease(folder)
    if held is not None and not held.holder_is_gone(now):
        raise _busy(what, folder, held, now)
    if held is not None:
        log(f"taking over the lease of {what} from {held.describe(now)}, which is gone")
    mine = Lease(uuid.uuid4().hex, socket.gethostname(), os.getpid(), now, now)
    _write(folder, mine)
    time.sleep(SETTLE_S)  # a driver that read "free" just before our write has written by now
    winner = read_lease(folder)
    if winner is not None and winner.owner != mine.owner:
        raise _busy(what, folder, winner, time.time())

    def renew(finished) -> None:
        while not finished.wait(RENEW_S):
            try:
                current = read_lease(folder)
                if current is not None and current.owner != mine.owner:  # we went STALE_S unrenewed
                    log(f"the lease of {what} was taken over by {current.describe(time.time())}")
                    return
                _write(folder, Lease(**{**asdict(mine), "renewed": time.time()}))
            except Exception as error:  # storage down: the next renewal may get through
                log(f"could not renew the lease of {what}: {error}")

    _HELD_HERE.add(mine.owner)
    try:
        with in_background(renew, "ganpipe-run-lease", join_s=10):
            yield mine
    finally:
        _HELD_HERE.discard(mine.owner)
        with contextlib.suppress(Exception):  # storage down: the lease goes stale by itself
            current = read_lease(folder)
            if current is not None and current.owner == mine.owner:
                folder.delete(LEASE_FILE)
            folder.remove_if_empty()  # a run or search refused before it wrote anything leaves no folder


def read_lease(folder: Storage) -> Lease | None:
    if not folder.exists(LEASE_FILE):
        return None
    for _ in range(3):
        try:
            return Lease(**json.loads(folder.read_bytes(LEASE_FILE)))
        except (ValueError, TypeError):  # caught mid-write: read again
            time.sleep(0.5)
        except FileNotFoundError:  # released meanwhile
            return None
    return None  # unreadable: not a lease anyone holds


def _write(folder: Storage, lease: Lease) -> None:
    folder.write_bytes(LEASE_FILE, json.dumps(asdict(lease)).encode())


def _busy(what: str, folder: Storage, held: Lease, now: float) -> RunBusy:
    return RunBusy(
        f"{what} is in progress in {held.describe(now)}, which holds {folder.uri}/{LEASE_FILE}. "
        f"Wait for it to end or stop it; a lease not renewed for {STALE_S:.0f} s is taken over"
    )
