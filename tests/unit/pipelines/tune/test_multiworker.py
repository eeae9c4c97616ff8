"""Multi-worker trials: how many fit the cluster at once, and how a failed one is named."""

import pytest

from pipelines.cluster.room import Capacity
from pipelines.tune.multiworker import failure_reason, trial_resources
from pipelines.tune.options import SearchOptions


def test_a_trial_whose_workers_take_every_cpu_is_refused_not_left_waiting():
    """Its driver's 0.01 CPU was not counted: 2 workers of 1 CPU 'fitted' a 2-CPU cluster, and Ray
    waited for ever for the CPU the driver held."""
    two_cpus = Capacity([{"CPU": 2.0}], {"CPU": 2.0}, may_grow=False)
    options = SearchOptions(space="ring", workers_per_trial=2, cpus_per_trial=2.0)
    with pytest.raises(ValueError, match=r"a trial of 2 workers needs \{'CPU': 2.01\}"):
        trial_resources(options, two_cpus, log=lambda line: None)
    options = SearchOptions(space="ring", workers_per_trial=2, cpus_per_trial=1.8)
    assert trial_resources(options, two_cpus, print)[1] == 1


def test_gpu_trials_on_a_cluster_that_may_grow_are_started_and_on_a_local_one_refused():
    """infra/k8s/raycluster.yaml's GPU group has minReplicas 0: counting only the nodes present,
    every GPU search there was refused before it began."""
    head_only = [{"CPU": 0.0}]
    options = SearchOptions(space="ring", workers_per_trial=2, cpus_per_trial=8.0, gpus_per_trial=2.0, max_concurrent=4)
    lines: list[str] = []
    assert trial_resources(options, Capacity(head_only, {}, may_grow=True), lines.append)[1] == 4
    assert "Ray waits until nodes join" in lines[0]
    with pytest.raises(ValueError, match=r"cannot hold 2 worker\(s\) of \{CPU: 4, GPU: 1\} each"):
        trial_resources(options, Capacity(head_only, {}, may_grow=False), lines.append)


def test_a_multi_worker_trial_that_failed_is_named_by_its_lowest_ranks_error_or_its_controllers():
    from ray.exceptions import RayTaskError
    from ray.train import ControllerError, WorkerGroupError

    wrapped = RayTaskError("train_fn", "Traceback ...", RuntimeError("CUDA out of memory\nTried to allocate 2 GiB"))
    workers = WorkerGroupError("rank snippets", {1: ValueError("rank 1 followed"), 0: wrapped})
    assert failure_reason(workers, 3) == "failed after 3 attempts: RuntimeError: CUDA out of memory"
    assert failure_reason(workers, 1) == "failed after 1 attempt: RuntimeError: CUDA out of memory"
    controller = ControllerError(TimeoutError("no placement group\n..."))
    assert failure_reason(controller, 3) == "failed: TimeoutError: no placement group"
