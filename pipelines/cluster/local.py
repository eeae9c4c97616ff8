"""A local Ray cluster for one command: started out of reach of the command's stop signals,
and stopped without waiting on them when the command ends.

`ray.init()` starts the cluster, with SIGINT and SIGTERM blocked in its processes
(runtime/signals.py says why). Ray's shutdown sends each of its processes SIGTERM and waits a
second before SIGKILL; with SIGTERM blocked, every one of those seconds was spent waiting (the
command went on 4-5 s after its last line). So Ray's shutdown is made to kill at once, and to
kill the processes the raylet started too (its agents, which otherwise outlived the command by
a minute).

Checked for a public way: Ray has none to stop a local cluster without the graceful wait, and
killing its processes before `ray.shutdown()` (psutil, no Ray internals) made the exit slower
still (6 s: the driver's own disconnect waits for the GCS it can no longer reach). So this
reaches into Ray's `Node` (not public API; Ray is pinned to its minor version for it); where
that changes, Ray's own shutdown runs as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import psutil

from pipelines.cluster.job_env import ray_runtime_env
from pipelines.runtime.signals import children_deaf_to


def start_local_cluster() -> float:
    """Start a local Ray cluster for this process; returns its CPUs."""
    import ray

    # address="local": a cluster of its own, even where another (`ray start`, a test's) runs on
    # this machine; a bare ray.init() would join that one and take its CPUs for ours.
    with children_deaf_to():  # a stop signal for the command must not take the cluster down mid-stop
        ray.init(address="local", log_to_driver=True, runtime_env=ray_runtime_env())
    stop_without_grace()
    return ray.cluster_resources().get("CPU", 0.0)


def stop_without_grace() -> bool:
    """Make Ray's shutdown of this process's local cluster kill it at once; False (nothing
    changed) when there is no such cluster or Ray's internals differ."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    kill_all = getattr(node, "kill_all_processes", None)
    if node is None or not callable(kill_all) or not isinstance(getattr(node, "all_processes", None), dict):
        return False
    node.kill_all_processes = _killing_children_too(node, kill_all)
    return True


def _killing_children_too(node: Any, kill_all: Callable[..., None]) -> Callable[..., None]:
    def kill_all_processes(*, check_alive: bool = True, allow_graceful: bool = False, wait: bool = False) -> None:
        del allow_graceful  # the grace is a second's wait for a SIGTERM these processes do not take
        children = []  # listed before the raylet goes, while they are still its children
        for info in node.all_processes.get("raylet", []):
            with contextlib.suppress(psutil.Error):
                children += psutil.Process(info.process.pid).children(recursive=True)
        try:
            kill_all(check_alive=check_alive, allow_graceful=False, wait=wait)
        finally:
            for child in children:  # SIGKILL, not waited on: the raylet's children, not ours
                with contextlib.suppress(psutil.Error):
                    child.kill()

    return kill_all_processes
