"""Does the Ray cluster have room for the workers asked for? Checked before training starts.

Ray Train V2 reserves its workers in one placement group and, when that group cannot be placed
within RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (60 s), tries again, without limit. On a cluster
that autoscales this is waiting for nodes, and Ray itself refuses a group larger than the
autoscaler's largest cluster. On a cluster that does not (a local one, or a fixed set of nodes)
no node will ever come: measured, `ganpipe train --workers 4` on this 2-CPU machine logged the
same startup timeout every minute until it was killed. So a fixed cluster too small for the
workers is refused here, in one line naming what was asked and what the nodes have.

Which kind of cluster it is: an autoscaler publishes its node groups in the cluster's state
(`get_max_resources_from_cluster_config`, what Ray Train itself reads); a cluster without that
record is fixed. Through Ray Client that state cannot be read, and the check only warns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

Resources = Mapping[str, float]


@dataclass(frozen=True)
class Capacity:
    """What the cluster's nodes hold now, and what its autoscaler may grow it to."""

    nodes: list[dict[str, float]]  # each alive node's resources
    autoscaling_max: dict[str, float] | None  # None: the cluster does not autoscale
    known: bool = True  # False: whether it autoscales could not be read (Ray Client)
    free: dict[str, float] | None = None  # what no task or actor holds now, over all nodes

    @property
    def total(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for node in self.nodes:
            for name, amount in node.items():
                total[name] = total.get(name, 0.0) + amount
        return total

    def largest(self) -> dict[str, float]:
        """The most the cluster can ever hold: the autoscaler's limit, or the nodes it has."""
        return dict(self.autoscaling_max) if self.autoscaling_max is not None else self.total


def cluster_capacity() -> Capacity:
    import ray

    nodes = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    free = dict(ray.available_resources())
    try:
        from ray._private.state import state  # Ray Train's own source of the autoscaler's limits

        limit = state.get_max_resources_from_cluster_config()
    except Exception:  # Ray Client, or a Ray without it: leave the decision to Ray
        return Capacity(nodes, None, known=False, free=free)
    return Capacity(nodes, {k: float(v) for k, v in limit.items()} if limit else None, free=free)


def workers_that_fit(nodes: list[dict[str, float]], per_worker: Resources) -> int:
    """How many workers of `per_worker` resources the nodes can hold, each worker on one node."""
    asked = {name: amount for name, amount in per_worker.items() if amount > 0}
    if not asked:
        return 0
    return sum(int(min(node.get(name, 0.0) / amount for name, amount in asked.items()) + 1e-9) for node in nodes)


def check_room(
    count: int,
    each: Resources,
    what: str,
    hint: str,
    log: Callable[[str], None] = print,
    capacity: Capacity | None = None,
) -> None:
    """Raise ValueError if a fixed cluster cannot hold `count` `what`s (workers, trials) of `each`
    resources at once; say so when an autoscaling cluster must first grow, or when other work
    holds the room now. `hint` names the options that change the request."""
    capacity = capacity or cluster_capacity()
    fit = workers_that_fit(capacity.nodes, each)
    asked = f"{count} {what}(s) of {_shown(each)} each"
    if fit >= count:
        free = workers_that_fit([capacity.free], each) if capacity.free is not None else count
        if free < count:  # else the wait is silent (Ray Train speaks after a 60 s startup timeout)
            log(f"the Ray cluster holds {asked}, but other work uses it now (free room for about {free}): "
                "waiting until it frees up")  # fmt: skip
        return
    has = f"its nodes have room for {fit} ({'; '.join(_shown(node, each) for node in capacity.nodes) or 'none'})"
    if capacity.autoscaling_max is not None:
        log(f"the Ray cluster has no room yet for {asked}: {has}; waiting for its autoscaler to add nodes")
    elif not capacity.known:
        log(f"the Ray cluster may have no room for {asked}: {has}; Ray waits until nodes join")
    else:
        raise ValueError(f"the Ray cluster cannot hold {asked}: {has}, and it does not autoscale. {hint}, or add nodes")


def _shown(resources: Resources, only: Resources | None = None) -> str:
    """`{CPU: 1, GPU: 0.5}`: the amounts of the resources `only` asks for (all if it is None)."""
    asked = only or resources
    names = [name for name in asked if asked[name] > 0]
    return "{" + ", ".join(f"{name}: {resources.get(name, 0.0):g}" for name in names) + "}"
