"""One holder at a time: of a run's training, of a search, of a model's promotions.

Two trainings of one run (a scheduled flow that outlasted its interval beside a manual run)
would resume from the same checkpoint and overwrite each other; two promotions of one model
would each move `champion`. So the driver holds a lease, `lease.json` in the thing's storage
folder, naming who holds it, for as long as it works:

- in S3, the lease is taken by a conditional create (`put_object(IfNoneMatch="*")`: 412 when
  it exists), renewed every RENEW_S and released only while its ETag is still ours (`IfMatch`:
  412 means another holder has it). A lease not renewed for STALE_S (its holder died) is taken
  over with `IfMatch` on the ETag that was read, so of two takers exactly one wins. Ages
  compare the holder's clock with the reader's: machines need NTP-close clocks, well within
  STALE_S. AWS S3, MinIO and moto honour both headers.
- in a local folder, the lease file is held with an exclusive `flock`, which the OS drops
  when its holder ends, however it ends: a local lease never goes stale.

Checked first: Ray, MLflow and boto3 have no lock on shared storage, and Prefect's concurrency
limits live in its server, which the embedded default does not keep between commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil

from gan_core.outputs.run_lock import RunBusy
from pipelines.runtime.background import in_background
from pipelines.storage.location import Storage
from pipelines.storage.s3 import s3_client

LEASE_FILE = "lease.json"
# S3's answers that the lease is not, or no longer, ours to write.
LOST = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404")

_HELD_HERE: set[str] = set()  # owners of the leases this process holds now


@dataclass(frozen=True)
class LeaseTiming:
    renew_s: float = 15.0
    stale_s: float = 90.0
    wait_s: float = 0.0  # how long a taker waits for the holder to finish before it gives up
    poll_s: float = 1.0


@dataclass(frozen=True)
class Lease:
    owner: str  # unique per acquisition
    host: str
    pid: int
    since: float  # epoch seconds, the holder's clock
    renewed: float

    @classmethod
    def mine(cls) -> Lease:
        now = time.time()
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), now, now)

    def holder_is_gone(self, now: float, stale_s: float) -> bool:
        """Not renewed for `stale_s`, or its process no longer runs on this very machine, or it is
        this process's own, left by an earlier attempt whose release failed (storage was down)."""
        if now - self.renewed > stale_s:
            return True
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return self.owner not in _HELD_HERE
        return not psutil.pid_exists(self.pid)

    def describe(self, now: float) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"process {self.pid} on {self.host} (since {started}, renewed {now - self.renewed:.0f} s ago)"


@contextlib.contextmanager
def holding(
    folder: Storage, what: str, log: Callable[[str], None] = print, timing: LeaseTiming = LeaseTiming()
) -> Iterator[Lease]:
    """While inside, this process holds the lease of `what` ("run NAME", "promotions of MODEL") in
    `folder`; raises RunBusy if another process holds it for longer than `timing.wait_s`."""
    lease = Lease.mine()
    taken = _LocalLease(folder, what) if folder.scheme == "file" else _S3Lease(folder, what, timing, log)
    deadline = time.monotonic() + timing.wait_s
    _HELD_HERE.add(lease.owner)  # from its first write on: another thread here must not think it left over
    try:
        while not taken.take(lease):
            if time.monotonic() >= deadline:
                raise taken.busy()
            time.sleep(timing.poll_s)
        try:
            with in_background(taken.renew_every, f"ganpipe-lease-{lease.owner[:8]}", join_s=10):
                yield lease
        finally:
            with contextlib.suppress(Exception):  # storage down: an S3 lease goes stale by itself
                taken.release()
    finally:
        _HELD_HERE.discard(lease.owner)  # after the release: until then it is still held here
        folder.remove_if_empty()  # a run refused before it wrote anything leaves no folder


class _S3Lease:
    def __init__(self, folder: Storage, what: str, timing: LeaseTiming, log: Callable[[str], None]) -> None:
        self.client, self.bucket, self.key = s3_client(attempts=3), folder.bucket, folder.key(LEASE_FILE)
        self.what, self.where, self.timing, self.log = what, f"{folder.uri}/{LEASE_FILE}", timing, log
        self.lease: Lease | None = None
        self.etag = ""
        self.holder: Lease | None = None  # the other holder, when taking failed

    def take(self, lease: Lease) -> bool:
        """True once the lease is ours; False while another holder has it."""
        if self._put(lease, IfNoneMatch="*"):
            return True
        read = self._read()
        if read is None:  # released meanwhile: try again at once
            return self._put(lease, IfNoneMatch="*")
        self.holder, etag = read
        now = time.time()
        if not self.holder.holder_is_gone(now, self.timing.stale_s):
            return False
        self.log(f"taking over the lease of {self.what} from {self.holder.describe(now)}, which is gone")
        return self._put(lease, IfMatch=etag)

    def renew_every(self, finished) -> None:
        while not finished.wait(self.timing.renew_s):
            assert self.lease is not None
            try:
                if not self._put(replace(self.lease, renewed=time.time()), IfMatch=self.etag):
                    self.log(f"the lease of {self.what} was taken over by another process; {self.where}")
                    return
            except Exception as error:  # storage down: the next renewal may get through
                self.log(f"could not renew the lease of {self.what}: {error}")

    def release(self) -> None:
        with contextlib.suppress(self.client.exceptions.ClientError):  # taken over or gone: not ours to delete
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)

    def busy(self) -> RunBusy:
        held = self.holder.describe(time.time()) if self.holder else "another process"
        return RunBusy(
            f"{self.what} is in progress in {held}, which holds {self.where}. Wait for it to end or stop it; "
            f"a lease not renewed for {self.timing.stale_s:.0f} s is taken over"
        )

    def _put(self, lease: Lease, **condition: str) -> bool:
        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=json.dumps(asdict(lease)).encode(), **condition
            )
        except self.client.exceptions.ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in LOST:
                return False
            raise
        self.lease, self.etag = lease, answer["ETag"]
        return True

    def _read(self) -> tuple[Lease, str] | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.client.exceptions.NoSuchKey:
            return None
        body = answer["Body"].read()
        try:
            return Lease(**json.loads(body)), answer["ETag"]
        except (ValueError, TypeError):  # not a lease of ours: as good as stale
            return Lease("unreadable", "", 0, 0.0, 0.0), answer["ETag"]


class _LocalLease:
    def __init__(self, folder: Storage, what: str) -> None:
        self.path, self.what = Path(folder.prefix) / LEASE_FILE, what
        self.file = None
        self.holder = "another process"

    def take(self, lease: Lease) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            self.holder = _description(handle.read())
            handle.close()
            return False
        if not self.path.exists() or os.fstat(handle.fileno()).st_ino != os.stat(self.path).st_ino:
            handle.close()  # released and removed between our open and our lock: take the new file
            return self.take(lease)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(lease)))
        handle.flush()
        self.file = handle
        return True

    def renew_every(self, finished) -> None:
        """The OS holds a local lease for as long as its holder lives: nothing to renew."""

    def release(self) -> None:
        if self.file is not None:
            self.path.unlink(missing_ok=True)  # while still locked: no one can have locked it meanwhile
            self.file.close()

    def busy(self) -> RunBusy:
        return RunBusy(
            f"{self.what} is in progress in {self.holder}, which holds {self.path}. Wait for it to end or stop it"
        )


def _description(text: str) -> str:
    try:
        return Lease(**json.loads(text)).describe(time.time())
    except (ValueError, TypeError):
        return "another process"
