"""What the driver sends each Ray Train worker: typed, so a misspelt option fails where it is written.

Ray Train hands `train_loop_config` to every worker as a dict; `WorkerOptions.to_dict` makes
that dict and `from_dict` reads it back, each field named once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gan_core.config import ExperimentConfig, from_dict
from gan_core.training import Hook
from pipelines.settings import TRACKING_WAIT_S
from pipelines.storage.location import Storage

# More hooks for the worker of a rank: a user's own reporting, a test's fault injection. Picklable
# (a module-level function or an instance of a module-level class): Ray sends it to the workers.
HookFactory = Callable[[int], list[Hook]]


@dataclass(frozen=True)
class Attempt:
    """One `fit()` of a run: its records (a divergence, a stop) carry this attempt's own id, so that
    none left by an earlier attempt is mistaken for them."""

    storage_uri: str  # where the run's checkpoints live
    run_name: str
    id: str

    @classmethod
    def new(cls, storage_uri: str, run_name: str) -> Attempt:
        return cls(storage_uri, run_name, uuid.uuid4().hex)

    def folder(self) -> Storage:
        return Storage.from_uri(self.storage_uri).child(self.run_name)

    @property
    def divergence_record(self) -> str:
        return f"diverged-{self.id}.txt"

    @property
    def stop_record(self) -> str:
        return f"stop-{self.id}.txt"


@dataclass(frozen=True)
class WorkerOptions:
    config: ExperimentConfig
    attempt: Attempt
    run_id: str | None = None  # the MLflow run rank 0 logs into; None: no tracking
    tracking_uri: str | None = None
    tracking_wait_s: float = TRACKING_WAIT_S  # how long the end of training waits for MLflow
    sync_batchnorm: bool = False
    check_sync: bool = True  # rank 0 logs how far apart the ranks' weights are (0.0 in sync)
    graceful_stop: bool = False  # rank 0 watches for the driver's stop record
    classifier_cache: str | None = None  # the feature classifiers' cache, for rank 0's collapse watch

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorkerOptions:
        return cls(**{**values, "config": from_dict(values["config"]), "attempt": Attempt(**values["attempt"])})
