"""Room on the Ray cluster for the workers asked for: refused on a fixed cluster, waited for on one
that autoscales (Ray Train V2 would otherwise retry its worker group's start for ever)."""

from __future__ import annotations

import pytest

from pipelines.cluster_room import Capacity, check_room, workers_that_fit

TWO_NODES = [{"CPU": 2.0, "memory": 8e9}, {"CPU": 2.0, "GPU": 1.0}]
HINT = "Ask for fewer --workers"


def test_workers_are_counted_node_by_node_not_against_the_cluster_total():
    assert workers_that_fit(TWO_NODES, {"CPU": 1.0}) == 4
    assert workers_that_fit(TWO_NODES, {"CPU": 3.0}) == 0  # 4 CPUs in all, but never 3 on one node
    assert workers_that_fit(TWO_NODES, {"CPU": 1.0, "GPU": 1.0}) == 1
    assert workers_that_fit(TWO_NODES, {"CPU": 0.5, "GPU": 0.25}) == 4
    assert workers_that_fit(TWO_NODES, {"CPU": 2.0 / 3.0}) == 6  # a share that is not exact in binary
    assert workers_that_fit([], {"CPU": 1.0}) == 0


def test_a_fixed_cluster_too_small_is_refused_with_what_was_asked_and_what_it_has():
    fixed = Capacity(TWO_NODES, autoscaling_max=None)
    check_room(4, {"CPU": 1.0}, "worker", HINT, log=pytest.fail, capacity=fixed)  # fits: nothing said
    with pytest.raises(ValueError) as refused:
        check_room(2, {"CPU": 1.0, "GPU": 1.0}, "worker", HINT, log=pytest.fail, capacity=fixed)
    assert str(refused.value) == (
        "the Ray cluster cannot hold 2 worker(s) of {CPU: 1, GPU: 1} each: its nodes have room for 1 "
        "({CPU: 2, GPU: 0}; {CPU: 2, GPU: 1}), and it does not autoscale. Ask for fewer --workers, or add nodes"
    )


def test_an_autoscaling_cluster_is_waited_for_and_a_cluster_of_unknown_kind_is_only_warned_about():
    lines: list[str] = []
    growing = Capacity([{"CPU": 2.0}], autoscaling_max={"CPU": 34.0, "GPU": 4.0})
    check_room(2, {"CPU": 8.0, "GPU": 1.0}, "worker", HINT, log=lines.append, capacity=growing)
    unknown = Capacity([{"CPU": 2.0}], autoscaling_max=None, known=False)
    check_room(3, {"CPU": 1.0}, "worker", HINT, log=lines.append, capacity=unknown)
    assert lines == [
        "the Ray cluster has no room yet for 2 worker(s) of {CPU: 8, GPU: 1} each: its nodes have room for 0 "
        "({CPU: 2, GPU: 0}); waiting for its autoscaler to add nodes",
        "the Ray cluster may have no room for 3 worker(s) of {CPU: 1} each: its nodes have room for 2 ({CPU: 2}); "
        "Ray waits until nodes join",
    ]


def test_an_autoscaling_cluster_counts_at_its_largest():
    growing = Capacity([{"CPU": 2.0}], autoscaling_max={"CPU": 34.0, "GPU": 4.0})
    assert growing.largest() == {"CPU": 34.0, "GPU": 4.0}
    assert Capacity(TWO_NODES, None).largest() == {"CPU": 4.0, "memory": 8e9, "GPU": 1.0}


def test_a_cluster_big_enough_but_busy_says_so_once_and_waits():
    """Ray waits for busy resources without a word until its 60 s startup timeout."""
    lines: list[str] = []
    busy = Capacity(TWO_NODES, autoscaling_max=None, free={"CPU": 1.0, "GPU": 1.0})
    check_room(2, {"CPU": 1.0}, "worker", HINT, log=lines.append, capacity=busy)
    check_room(1, {"CPU": 1.0}, "worker", HINT, log=lines.append, capacity=busy)  # free room enough: nothing said
    assert lines == [
        "the Ray cluster holds 2 worker(s) of {CPU: 1} each, but other work uses it now (free room for about 1): "
        "waiting until it frees up"
    ]
