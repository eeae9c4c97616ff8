"""A local Ray cluster that a command started is stopped with it, at once and entirely."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil

# Starts a local cluster as the commands do, runs a task (so the raylet has started workers),
# prints the cluster's processes and whether the quick stop is in place, and exits normally:
# Ray's exit hook stops the cluster.
COMMAND = """
import json, psutil, ray
from pipelines.cluster.connect import ensure_ray

ensure_ray(None, log=lambda _: None)
ray.get(ray.remote(lambda: 1).remote())
node = ray._private.worker._global_node
raylets = [info.process.pid for info in node.all_processes["raylet"]]
pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
pids += [child.pid for pid in raylets for child in psutil.Process(pid).children(recursive=True)]
quick = "killing_children_too" in node.kill_all_processes.__qualname__
print(json.dumps({"pids": pids, "quick": quick}))
"""


def test_the_local_cluster_stops_with_the_command_and_leaves_no_process_behind():
    done = subprocess.run([sys.executable, "-c", COMMAND], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    started = json.loads(done.stdout.strip().splitlines()[-1])
    # Ray's internals are as `stop_without_grace` expects; otherwise Ray's slower shutdown runs.
    assert started["quick"]
    assert len(started["pids"]) >= 5  # the GCS, raylet, dashboard, monitors, the raylet's agents and a worker
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in started["pids"] if running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive, [psutil.Process(pid).cmdline()[:2] for pid in alive if running(pid)]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
