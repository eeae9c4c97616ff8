"""Does the Ray cluster have room for the workers asked for? Checked before training starts.

Ray Train V2 reserves its workers in one placement group and, when that group cannot be placed
within RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (60 s), asks again, without limit. On a cluster
that autoscales this is waiting for nodes; on one that does not, no node will ever come (seen:
`ganpipe train --workers 4` on a 2-CPU machine logged the same timeout every minute until it
was killed). So a local cluster (no RAY_ADDRESS: this machine, which does not grow) too small
for the work is refused here, in one line naming what was asked and what the nodes have. On a
cluster at RAY_ADDRESS, which may autoscale, a request that does not fit yet is said once and
left to Ray. Checked: Ray's public API has no way to ask whether a cluster autoscales (Ray
Train reads a private record); where the work runs tells it well enough.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

Resources = Mapping[str, float]


@dataclass(frozen=True)
class Capacity:
    """What the cluster's nodes hold, what no task or actor holds now, and whether it can grow."""

    nodes: list[dict[str, float]]  # each alive node's resources
    free: dict[str, float]  # over all nodes
    may_grow: bool  # a cluster at RAY_ADDRESS: it may autoscale

    @property
    def total(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for node in self.nodes:
            for name, amount in node.items():
                total[name] = total.get(name, 0.0) + amount
        return total


def cluster_capacity(may_grow: bool) -> Capacity:
    import ray

    nodes = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    return Capacity(nodes, dict(ray.available_resources()), may_grow)


def workers_that_fit(nodes: list[dict[str, float]], per_worker: Resources) -> int:
    """How many workers of `per_worker` resources the nodes can hold, each worker on one node."""
    asked = {name: amount for name, amount in per_worker.items() if amount > 0}
    if not asked:
        return 0
    return sum(int(min(node.get(name, 0.0) / amount for name, amount in asked.items()) + 1e-9) for node in nodes)


def check_room(
    count: int, each: Resources, what: str, hint: str, capacity: Capacity, log: Callable[[str], None] = print
) -> None:
    """Raise ValueError if a cluster that cannot grow cannot hold `count` `what`s (workers, trials)
    of `each` resources at once; say so when one that may grow must, or when other work holds
    the room now. `hint` names the options that change the request."""
    fit = workers_that_fit(capacity.nodes, each)
    asked = f"{count} {what}(s) of {_shown(each)} each"
    if fit >= count:
        if workers_that_fit([capacity.free], each) < count:  # else the wait is silent for a minute
            log(f"the Ray cluster holds {asked}, but other work uses it now: waiting until it frees up")
        return
    has = f"its nodes have room for {fit} ({'; '.join(_shown(node, each) for node in capacity.nodes) or 'none'})"
    if capacity.may_grow:
        log(f"the Ray cluster has no room yet for {asked}: {has}; Ray waits until nodes join")
        return
    raise ValueError(f"the local Ray cluster cannot hold {asked}: {has}. {hint}, or run on a cluster (RAY_ADDRESS)")


def _shown(resources: Resources, only: Resources | None = None) -> str:
    """`{CPU: 1, GPU: 0.5}`: the amounts of the resources `only` asks for (all if it is None)."""
    asked = only or resources
    names = [name for name in asked if asked[name] > 0]
    return "{" + ", ".join(f"{name}: {resources.get(name, 0.0):g}" for name in names) + "}"
