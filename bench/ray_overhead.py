"""What training through Ray Train costs beside gan_core's loop alone, per step and per fit.

    python bench/ray_overhead.py --steps 2000                 # 1 and 2 workers on one node
    python bench/ray_overhead.py --steps 2000 --nodes 2       # ... and 2 workers on 2 Ray nodes
    python bench/ray_overhead.py --steps 2000 --profile 25    # where a worker's step time goes

Prints one JSON line per path, all at the same config and global batch:
- `local`: gan_core's `fit` in this process, with the threads torch picks (all cores);
- `ray floor`: what Ray itself needs, with nothing of ours: `ray.init` of a local cluster, and
  a TorchTrainer whose worker returns at once (the cluster's first fit, and a warm one);
- `ray train`: the project's worker as `ganpipe train` runs it (graceful stop watched, tracking
  off), each worker reserving its share of the cores as the CLI sizes it, on a fresh cluster.
  `first_fit_s` is a 1-step fit as the cluster's first (what `ganpipe train` pays), `fixed_s`
  a warm one (what a search's next trial pays); the per-step figures are the N-step fit minus
  the warm 1-step fit. `scaling_efficiency` is images/s
  against one worker's times the workers.
With --profile K, cProfile runs inside rank 0 and around the local loop, and the K functions
whose own time per step differs most are printed as a table (ms per step, Ray minus local).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from gan_core.config import ExperimentConfig, load_config, preset_path
from gan_core.data import load_dataset
from gan_core.training import Hook, TrainState, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--preset", default="ring")
    parser.add_argument("--workers", default="1,2", help="worker counts to run on one node, comma-separated")
    parser.add_argument("--nodes", type=int, default=1, help="also run that many workers on as many Ray nodes")
    parser.add_argument("--profile", type=int, default=0, metavar="K", help="print the K functions that differ most")
    args = parser.parse_args()

    config = bench_config(args.preset, args.steps)
    cpus = os.cpu_count() or 1
    local_s, local_profile = run_local(config, args.profile > 0)
    emit(path="local", steps=args.steps, seconds=local_s, images_per_s=images_per_s(config, local_s), cpus=cpus)

    floor = on_fresh_cluster(lambda: empty_trainer_s(workers=1, cpus_per_worker=cpus))
    emit(path="ray floor", ray_init_s=floor["ray_init_s"], first_fit_s=floor["first"], warm_fit_s=floor["warm"])
    one_worker_rate = None
    for workers in [int(w) for w in args.workers.split(",")]:
        figures = on_fresh_cluster(
            lambda w=workers, rate=one_worker_rate: through_ray(config, w, cpus / w, local_s, rate, args.profile)
        )
        one_worker_rate = one_worker_rate or (figures["images_per_s"] if workers == 1 else None)
        emit(path="ray train", nodes=1, **figures)
    if args.nodes > 1:
        emit(path="ray train", nodes=args.nodes, **on_nodes(config, args.nodes, cpus, local_s, one_worker_rate))
    if args.profile:
        print_profile_table(local_profile, PROFILE_FILE, args.steps, args.profile)


def bench_config(preset: str, steps: int) -> ExperimentConfig:
    # One checkpoint, at the end, as a short `ganpipe train` run has; progress as the preset says.
    return load_config(preset_path(preset), [f"train.steps={steps}", f"train.checkpoint_every={steps}"])


def images_per_s(config: ExperimentConfig, seconds: float) -> float:
    return config.train.steps * config.train.batch_size / seconds


def emit(**figures: object) -> None:
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}), flush=True)


# -- the local loop ------------------------------------------------------------------------------
def run_local(config: ExperimentConfig, profile: bool) -> tuple[float, pstats.Stats | None]:
    data = load_dataset(config.data.name, config.data.root, config.data.n_train, config.data.seed)
    started = time.perf_counter()
    fit(config, data)
    seconds = time.perf_counter() - started
    if not profile:
        return seconds, None
    fit(config, data, [ProfileHook(LOCAL_PROFILE_FILE)])  # a run of its own, as in Ray
    return seconds, pstats.Stats(LOCAL_PROFILE_FILE)


# -- Ray Train -----------------------------------------------------------------------------------
def on_fresh_cluster(measure: Callable[[], dict]) -> dict:
    """`measure()`'s figures on a local cluster of its own, as each `ganpipe train` starts one
    (with the job settings it gives Ray: Ray Train's 0.5 s poll)."""
    import ray

    from pipelines.cluster.job_env import ray_runtime_env

    started = time.perf_counter()
    ray.init(address="local", log_to_driver=False, runtime_env=ray_runtime_env())
    init_s = time.perf_counter() - started
    try:
        return {"ray_init_s": init_s, **measure()}
    finally:
        ray.shutdown()


def empty_trainer_s(workers: int, cpus_per_worker: float) -> dict[str, float]:
    """Ray Train's own fixed cost: a TorchTrainer whose worker returns at once, as the first fit
    of a fresh cluster and again once Ray Train's actors and imports are warm."""
    import ray.train
    from ray.train.torch import TorchTrainer

    def nothing() -> None:
        return None

    seconds = []
    with tempfile.TemporaryDirectory() as storage:
        for name in ("first", "warm"):
            started = time.perf_counter()
            TorchTrainer(
                nothing,
                scaling_config=ray.train.ScalingConfig(
                    num_workers=workers, resources_per_worker={"CPU": cpus_per_worker}
                ),
                run_config=ray.train.RunConfig(name=name, storage_path=storage),
            ).fit()
            seconds.append(time.perf_counter() - started)
    return {"first": seconds[0], "warm": seconds[1]}


def through_ray(
    config: ExperimentConfig,
    workers: int,
    cpus_per_worker: float,
    local_s: float,
    one_worker_rate: float | None,
    profile: int = 0,
) -> dict[str, object]:
    from pipelines.train.scaling import Scaling
    from pipelines.train.trainer import run_trainer, worker_options

    scaling = Scaling(workers=workers, cpus_per_worker=cpus_per_worker, max_failures=0)
    one_step = replace(config, train=replace(config.train, steps=1, checkpoint_every=1))
    with tempfile.TemporaryDirectory() as storage:

        def timed(cfg: ExperimentConfig, name: str, with_hooks: tuple = ()) -> float:
            started = time.perf_counter()
            run_trainer(worker_options(cfg, name, storage, graceful_stop=True), scaling, hooks=with_hooks)
            return time.perf_counter() - started

        first = timed(one_step, "first")  # the fit `ganpipe train` pays: a fresh cluster's first
        fixed = timed(one_step, "one-step")  # warm: what a search's next trial pays
        whole = timed(config, "n-steps")
        if profile and workers == 1:  # a run of its own: the profiler slows what it watches
            timed(config, "profiled", (ProfileFactory(PROFILE_FILE),))
    per_step_s = (whole - fixed) / max(config.train.steps - 1, 1)
    rate = config.train.batch_size / per_step_s
    return {
        "workers": workers,
        "cpus_per_worker": cpus_per_worker,
        "steps": config.train.steps,
        "seconds": whole,
        "first_fit_s": first,
        "fixed_s": fixed,
        "per_step_ms": per_step_s * 1e3,
        "local_per_step_ms": local_s / config.train.steps * 1e3,
        "per_step_ratio": per_step_s * config.train.steps / local_s,
        "images_per_s": rate,
        "scaling_efficiency": rate / (one_worker_rate * workers) if one_worker_rate else 1.0,
    }


def on_nodes(config: ExperimentConfig, nodes: int, cpus: int, local_s: float, one_rate: float | None) -> dict:
    """`nodes` workers, one on each of `nodes` Ray nodes of this machine, the cores split among them."""
    import ray
    from ray.cluster_utils import Cluster

    from pipelines.cluster.job_env import ray_runtime_env

    share = max(1, cpus // nodes)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": share})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=share)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, runtime_env=ray_runtime_env())
        try:
            return through_ray(config, nodes, float(share), local_s, one_rate)
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()


# -- the profile ---------------------------------------------------------------------------------
PROFILE_FILE = os.path.join(tempfile.gettempdir(), "ray_overhead.worker.prof")
LOCAL_PROFILE_FILE = os.path.join(tempfile.gettempdir(), "ray_overhead.local.prof")


class ProfileHook(Hook):
    """cProfile from the first step to the last, written to `path` (rank 0 only)."""

    def __init__(self, path: str) -> None:
        self.path, self.profiler = path, cProfile.Profile()

    def on_start(self, state: TrainState) -> None:
        self.profiler.enable()

    def on_end(self, state: TrainState) -> None:
        self.profiler.disable()
        self.profiler.dump_stats(self.path)


@dataclass(frozen=True)
class ProfileFactory:
    """A picklable hook factory (run_trainer's `hooks`): rank 0 of each worker group profiles."""

    path: str

    def __call__(self, rank: int) -> list[Hook]:
        return [ProfileHook(self.path)] if rank == 0 else []


def print_profile_table(local: pstats.Stats | None, ray_file: str, steps: int, top: int) -> None:
    """Own time (tottime) per step of each function, Ray's worker beside the local loop."""
    if local is None or not os.path.exists(ray_file):
        print("no profile: the worker wrote none")
        return
    ours, theirs = own_times(local), own_times(pstats.Stats(ray_file))
    rows = sorted(set(ours) | set(theirs), key=lambda f: -abs(theirs.get(f, 0) - ours.get(f, 0)))
    print(f"\n{'function':<72} {'local ms/step':>13} {'ray ms/step':>12} {'difference':>11}")
    for function in rows[:top]:
        here, there = ours.get(function, 0) / steps * 1e3, theirs.get(function, 0) / steps * 1e3
        print(f"{function[:72]:<72} {here:13.3f} {there:12.3f} {there - here:+11.3f}")
    total_here, total_there = sum(ours.values()) / steps * 1e3, sum(theirs.values()) / steps * 1e3
    print(f"{'all functions':<72} {total_here:13.3f} {total_there:12.3f} {total_there - total_here:+11.3f}")


def own_times(stats: pstats.Stats) -> dict[str, float]:
    times: dict[str, float] = {}
    for (file, line, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{name} ({os.path.basename(file)}:{line})"
        times[key] = times.get(key, 0.0) + tottime
    return times


if __name__ == "__main__":
    main()
