"""Room on the Ray cluster for the workers asked for: refused on a local cluster, left to Ray on one
at RAY_ADDRESS that may grow (Ray Train V2 would otherwise retry its worker group's start for ever)."""

from __future__ import annotations

import pytest

from pipelines.cluster.room import Capacity, check_room, workers_that_fit

TWO_NODES = [{"CPU": 2.0, "memory": 8e9}, {"CPU": 2.0, "GPU": 1.0}]
HINT = "Ask for fewer --workers"


def test_workers_are_counted_node_by_node_not_against_the_cluster_total():
    assert workers_that_fit(TWO_NODES, {"CPU": 1.0}) == 4
    assert workers_that_fit(TWO_NODES, {"CPU": 3.0}) == 0  # 4 CPUs in all, but never 3 on one node
    assert workers_that_fit(TWO_NODES, {"CPU": 1.0, "GPU": 1.0}) == 1
    assert workers_that_fit(TWO_NODES, {"CPU": 0.5, "GPU": 0.25}) == 4
    assert workers_that_fit(TWO_NODES, {"CPU": 2.0 / 3.0}) == 6  # a share that is not exact in binary
    assert workers_that_fit([], {"CPU": 1.0}) == 0


def _free(nodes):
    return {"CPU": sum(node.get("CPU", 0.0) for node in nodes), "GPU": sum(node.get("GPU", 0.0) for node in nodes)}


def test_a_local_cluster_too_small_is_refused_with_what_was_asked_and_what_it_has():
    local = Capacity(TWO_NODES, _free(TWO_NODES), may_grow=False)
    check_room(4, {"CPU": 1.0}, "worker", HINT, local, log=pytest.fail)  # fits: nothing said
    with pytest.raises(ValueError) as refused:
        check_room(2, {"CPU": 1.0, "GPU": 1.0}, "worker", HINT, local, log=pytest.fail)
    message = str(refused.value)
    assert "cannot hold 2 worker(s) of {CPU: 1, GPU: 1} each: its nodes have room for 1" in message
    assert "({CPU: 2, GPU: 0}; {CPU: 2, GPU: 1})" in message and HINT in message


def test_a_cluster_at_ray_address_that_may_grow_is_left_to_ray_with_one_line():
    lines: list[str] = []
    remote = Capacity([{"CPU": 2.0}], {"CPU": 2.0}, may_grow=True)
    check_room(2, {"CPU": 8.0, "GPU": 1.0}, "worker", HINT, remote, log=lines.append)
    [line] = lines
    assert "no room yet for 2 worker(s) of {CPU: 8, GPU: 1} each" in line and "Ray waits until nodes join" in line


def test_a_cluster_big_enough_but_busy_says_so_once_and_waits():
    """Ray waits for busy resources without a word until its 60 s startup timeout."""
    lines: list[str] = []
    busy = Capacity(TWO_NODES, {"CPU": 1.0, "GPU": 1.0}, may_grow=False)
    check_room(2, {"CPU": 1.0}, "worker", HINT, busy, log=lines.append)
    check_room(1, {"CPU": 1.0}, "worker", HINT, busy, log=lines.append)  # free room enough: nothing said
    [line] = lines
    assert "holds 2 worker(s) of {CPU: 1} each, but other work uses it now" in line
