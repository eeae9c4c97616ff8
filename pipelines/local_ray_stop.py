"""Stopping a local Ray cluster that was started deaf to stop signals, without waiting on them.

`ensure_ray` starts a local cluster with SIGINT and SIGTERM blocked in its processes (see
`signal_shield`). Ray's shutdown sends each of its processes SIGTERM, waits a second for it to
exit, then sends SIGKILL. With SIGTERM blocked, every one of those seconds was spent waiting:
measured, a `ganpipe train` on a local cluster went on for 7 s after it printed its metrics.

So the cluster is stopped with SIGKILL at once, which is what each process got anyway. The
processes the raylet started itself (its agents, the workers) are killed too: left to notice
their raylet's death, an agent went on trying to report it to a GCS that was already gone, and
outlived the command (measured: still running a minute later).

This reaches into Ray's `Node`, which is not public API; where that changes, Ray's own shutdown
runs as before.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

import psutil


def stop_without_grace() -> bool:
    """Make Ray's shutdown of the local cluster this process started kill it at once.

    Returns False, changing nothing, when there is no such cluster or Ray's internals differ."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    kill_all = getattr(node, "kill_all_processes", None)
    if node is None or not callable(kill_all) or not isinstance(getattr(node, "all_processes", None), dict):
        return False
    node.kill_all_processes = killing_children_too(node, kill_all)
    return True


def killing_children_too(node: Any, kill_all: Callable[..., None]) -> Callable[..., None]:
    def kill_all_processes(*, check_alive: bool = True, allow_graceful: bool = False, wait: bool = False) -> None:
        del allow_graceful  # the grace is a second's wait for a SIGTERM these processes do not take
        children = raylet_children(node)  # before the raylet goes, while they are still its children
        try:
            kill_all(check_alive=check_alive, allow_graceful=False, wait=wait)
        finally:
            kill(children)

    return kill_all_processes


def raylet_children(node: Any) -> list[psutil.Process]:
    children = []
    for info in node.all_processes.get("raylet", []):
        with suppress(psutil.Error):
            children += psutil.Process(info.process.pid).children(recursive=True)
    return children


def kill(processes: list[psutil.Process]) -> None:
    """SIGKILL, not waited on: it cannot be ignored, and these are the raylet's children, not
    ours, so their exit cannot be waited for here (orphans' zombies are reaped by init, if at all)."""
    for process in processes:
        with suppress(psutil.Error):
            process.kill()
