"""Training never waits for MLflow: a worker's metrics and pictures reach the tracking server
from a background thread, in the order the loop made them.

When the server does not answer (a restart, a network fault), the records wait in memory and
the thread keeps trying, while training goes on; once the server answers, they arrive in
order, with the timestamps of when they were made. A record the server refuses (a malformed
value) is reported and skipped: sending it again would get the same answer.

Metrics still waiting when a checkpoint is written travel inside it (`backlog`), so a worker
that dies during an outage loses none of them: its replacement, or the driver once training
has ended, sends them again. Sending twice is harmless: MLflow keeps one point per metric,
step, timestamp and value.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.runtime.faults import first_line, is_transient
from pipelines.runtime.waiting import FIRST_RETRY_S, next_pause
from pipelines.tracking.runs import log_metrics, log_step_image, png_bytes

# MLflow's own HTTP retries, for the processes that send through a TrackingQueue: one quick try
# per call, so that urllib3 does not retry a down server for minutes inside the queue's own wait
# (where nothing is said and `flush` cannot tell the server is down).
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


@dataclass(frozen=True)
class MetricsRecord:
    step: int
    timestamp_ms: int
    values: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "timestamp_ms": self.timestamp_ms, "values": dict(self.values)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> MetricsRecord:
        return cls(int(record["step"]), int(record["timestamp_ms"]), {k: float(v) for k, v in record["values"].items()})

    def describe(self) -> str:
        return f"metrics of step {self.step}"


@dataclass(frozen=True)
class StepImageRecord:
    """A picture of one step under `key`: MLflow's UI shows a key's images with a step slider."""

    key: str  # e.g. training_samples
    step: int
    data: bytes  # PNG

    def describe(self) -> str:
        return f"image {self.key} of step {self.step}"


Record = MetricsRecord | StepImageRecord


def send(client: Any, run_id: str, record: Record) -> None:
    """One record to MLflow, now (raises what the client raises)."""
    if isinstance(record, MetricsRecord):
        log_metrics(client, run_id, record.values, record.step, record.timestamp_ms)
    else:
        log_step_image(client, run_id, record.data, record.key, record.step)


def quick_failing_http() -> None:
    """Set QUICK_HTTP for this process (a Ray worker, a Tune trial) unless already set."""
    for name, value in QUICK_HTTP.items():
        os.environ.setdefault(name, value)


class TrackingQueue:
    """Records for one MLflow run, delivered in order by a daemon thread; `close` waits for them.

    Checked: MLflow's asynchronous logging (`synchronous=False`) queues in the background too,
    but drops a batch once its HTTP retries are spent, and cannot hand what is still queued to
    a checkpoint; both are what an outage that outlasts a worker needs."""

    def __init__(
        self, client: Any, run_id: str, where: str, log: Callable[[str], None] = print, first_retry_s=FIRST_RETRY_S
    ) -> None:
        self.client, self.run_id, self.where, self.log = client, run_id, where, log
        self.first_retry_s = first_retry_s
        self._records: deque[Record] = deque()
        self._changed = threading.Condition()
        self._stopping = False
        self._down_since: float | None = None  # when the server stopped answering; None while it answers
        self._thread = threading.Thread(target=self._deliver, name=f"mlflow-sender-{run_id[:8]}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the training loop's side

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """`values` at `step`, stamped now (the time they were made, not the time they arrive)."""
        self._put(MetricsRecord(step, int(time.time() * 1000), {k: float(v) for k, v in values.items()}))

    def log_step_image(self, image: Any, key: str, step: int) -> None:
        self._put(StepImageRecord(key, step, png_bytes(image)))

    def resend(self, backlog: list[dict[str, Any]]) -> None:
        """Queue again the metrics a checkpoint carried (`backlog`), before anything newer."""
        for record in backlog:
            self._put(MetricsRecord.from_dict(record))

    def backlog(self) -> list[dict[str, Any]]:
        """The metrics not yet delivered, as plain data a checkpoint can hold."""
        with self._changed:
            return [r.to_dict() for r in self._records if isinstance(r, MetricsRecord)]

    def pending(self) -> int:
        with self._changed:
            return len(self._records)

    def flush(self, wait_s: float) -> int:
        """Wait up to `wait_s` for the records so far to arrive, but not while the server is known
        to be down; returns how many are still waiting. For a report after which the process may
        be ended (a Tune scheduler stopping the trial)."""
        deadline = time.monotonic() + wait_s
        with self._changed:
            while self._records and self._down_since is None and time.monotonic() < deadline:
                self._changed.wait(timeout=max(0.0, deadline - time.monotonic()))
            return len(self._records)

    def close(self, wait_s: float) -> int:
        """Wait up to `wait_s` for every record to arrive, then stop; returns how many did not."""
        deadline = time.monotonic() + wait_s
        with self._changed:
            if self._records:
                count = len(self._records)
                self.log(f"waiting up to {wait_s:.0f} s for {count} tracking record(s) to reach {self.where}")
            while self._records and self._thread.is_alive() and time.monotonic() < deadline:
                self._changed.wait(timeout=min(5.0, max(0.0, deadline - time.monotonic())))
            left = len(self._records)
            self._stopping = True
            self._changed.notify_all()
        if left:
            self.log(f"{left} tracking record(s) did not reach {self.where} within {wait_s:.0f} s")
        return left

    def _put(self, record: Record) -> None:
        with self._changed:
            if self._stopping:
                raise RuntimeError("the tracking queue is closed")
            self._records.append(record)
            self._changed.notify_all()

    # ---------------------------------------------------------------- the sender thread

    def _deliver(self) -> None:
        pause = self.first_retry_s
        while True:
            with self._changed:
                while not self._records and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                record = self._records[0]
            try:
                send(self.client, self.run_id, record)
            except Exception as error:  # noqa: BLE001 - sorted into worth waiting for or not
                if is_transient(error):
                    self._note_down(error)
                    self._pause(pause)
                    pause = next_pause(pause)
                    continue
                self.log(f"MLflow refused the {record.describe()}, skipped: {first_line(error)}")
            pause = self.first_retry_s
            with self._changed:
                self._records.popleft()
                down_since, self._down_since = self._down_since, None
                held = len(self._records)
                self._changed.notify_all()
            if down_since is not None:
                gap = time.monotonic() - down_since
                self.log(f"MLflow at {self.where} answers again after {gap:.0f} s; sending {held} held record(s)")

    def _note_down(self, error: BaseException) -> None:
        """The first failed try of an outage: say so once, and let `flush` stop waiting."""
        with self._changed:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self._changed.notify_all()
        self.log(
            f"MLflow at {self.where} does not answer ({first_line(error)}); training goes on "
            "and its metrics wait here until it does"
        )

    def _pause(self, seconds: float) -> None:
        """Sleep between tries; new records do not cut it short, `close` does."""
        until = time.monotonic() + seconds
        with self._changed:
            while not self._stopping and time.monotonic() < until:
                self._changed.wait(timeout=until - time.monotonic())
