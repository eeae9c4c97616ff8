"""How many Ray Train workers, with what each reserves; and whether the cluster holds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from pipelines.cluster.connect import ensure_ray, local_cluster_cpus
from pipelines.cluster.room import check_room, cluster_capacity
from pipelines.settings import Settings

DEFAULT_CPUS_PER_WORKER = 1.0  # on a cluster at RAY_ADDRESS, which other jobs share
FEWER_WORKERS = "Ask for fewer --workers, or a smaller --cpus-per-worker or --gpus-per-worker"


@dataclass(frozen=True)
class Scaling:
    workers: int = 2
    cpus_per_worker: float | None = None  # None: decided by `sized_for` once the cluster is known
    gpus_per_worker: float = 0.0
    sync_batchnorm: bool = False
    max_failures: int = 2

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"--workers={self.workers} is not allowed: an integer >= 1")
        if (self.cpus_per_worker is not None and self.cpus_per_worker <= 0) or self.gpus_per_worker < 0:
            raise ValueError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
        if self.sync_batchnorm and not self.gpus_per_worker:
            # Else every worker fails in DDP's set-up ("SyncBatchNorm layers only work with GPU
            # modules"), three attempts and some 200 lines later.
            raise ValueError(
                "--sync-batchnorm needs GPU workers (--gpus-per-worker > 0): torch syncs batch norm on GPUs only"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Scaling:
        return cls(**values)

    def sized_for(self, local_cpus: float | None) -> Scaling:
        """CPUs per worker decided: as asked; else, on a local cluster this command started, its
        CPUs shared among the workers; else (a shared cluster) 1. Ray gives a worker as many torch
        threads as CPUs it reserves: one worker alone on 2 cores trained mnist-acgan at 6 steps/s
        with 1 CPU and at 9-10 with 2."""
        if self.cpus_per_worker is not None:
            return self
        share = max(1, int(local_cpus // self.workers)) if local_cpus else DEFAULT_CPUS_PER_WORKER
        return replace(self, cpus_per_worker=float(share))

    def per_worker(self) -> dict[str, float]:
        """The Ray resources each worker reserves."""
        resources = {"CPU": self.cpus_per_worker or DEFAULT_CPUS_PER_WORKER}
        if self.gpus_per_worker:
            resources["GPU"] = self.gpus_per_worker
        return resources


def ensure_room_for_workers(scaling: Scaling, settings: Settings, log: Callable[[str], None] = print) -> Scaling:
    """Connect to Ray, decide the CPUs per worker if they were not given, and refuse workers a
    local cluster cannot hold (Ray would wait for ever). Returns the scaling to train with."""
    ensure_ray(settings.ray_address, log, settings.ray_wait_s)
    local_cpus = local_cluster_cpus()
    sized = scaling.sized_for(local_cpus)
    if scaling.cpus_per_worker is None and local_cpus:
        log(f"each worker reserves {sized.cpus_per_worker:g} of the local cluster's {local_cpus:g} CPUs")
    capacity = cluster_capacity(may_grow=settings.ray_address is not None)
    check_room(sized.workers, sized.per_worker(), "worker", FEWER_WORKERS, capacity, log)
    return sized
