"""Time N training steps through Ray Train (one worker) against gan_core's loop alone.

    python bench/ray_overhead.py --steps 2000

Prints JSON: seconds for each path, their ratio, and the fixed cost (start-up) of the Ray path
measured with a 1-step run. Ray's share shrinks as N grows: it is mostly per-run start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from gan_core.config import load_config, preset_path
from gan_core.data import load_dataset
from gan_core.training import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--preset", default="ring")
    args = parser.parse_args()

    overrides = [f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}", "train.log_every=100"]
    config = load_config(preset_path(args.preset), overrides)
    data = load_dataset(config.data.name, config.data.root, config.data.n_train, config.data.seed)
    started = time.perf_counter()
    fit(config, data)
    local = time.perf_counter() - started

    import ray

    from pipelines.train.scaling import Scaling
    from pipelines.train.trainer import run_trainer, worker_options

    ray.init(log_to_driver=False)
    with tempfile.TemporaryDirectory() as storage:
        scaling = Scaling(workers=1, max_failures=0)
        one = load_config(preset_path(args.preset), ["train.steps=1", "train.checkpoint_every=1"])
        started = time.perf_counter()
        run_trainer(worker_options(one, "startup", storage), scaling)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        run_trainer(worker_options(config, "bench", storage), scaling)
        through_ray = time.perf_counter() - started
    ray.shutdown()
    print(
        json.dumps(
            {
                "preset": args.preset,
                "steps": args.steps,
                "cpus": os.cpu_count(),
                "local_s": round(local, 2),
                "ray_train_s": round(through_ray, 2),
                "ratio": round(through_ray / local, 2),
                "ray_fixed_cost_s": round(startup, 2),
                "ray_per_step_ratio": round((through_ray - startup) / local, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
