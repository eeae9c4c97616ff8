"""Images per second of gan_core's DCGAN-64 step trained through the project's own Ray Train
worker on one GPU, beside bench/train_step.py's figure for the same config in this process.

    python bench/ray_gpu.py                      # CUDA: batches 64 and 1024, the default path
    python bench/ray_gpu.py --compile            # both sides with train.compile=true
    python bench/ray_gpu.py --cpu-smoke          # a few steps on CPU: checks the path, not the speed

For each batch, first bench/train_step.py's gan_core step runs here (the config `ganpipe train`
runs on CUDA: bf16, channels_last, fused Adam, the step replayed as a CUDA graph), then the same
config trains in one Ray Train worker (`run_trainer` with one worker and one GPU, tracking off,
checkpoints to a local folder): fit() on the synthetic images written as a prepared dataset
version: warm-up steps, then timed ones (see `for_batch`), metrics every 100 steps on both
sides, each report an eager step and a host sync as in `ganpipe train`. The worker's rate is read
off the loop's own report times (a probe hook): from the report that ends the warm-up to the last
one. The run ends with one checkpoint of the (graphed) state, read back to check its step.

One JSON line per batch for each side (`impl`: "gan_core", as bench/train_step.py prints it,
then "ray_train"), the second with `ratio_to_bench` (the issue's goal: within 10%, >= 0.9).
`--out FILE` appends the lines to FILE too.

The worker needs neither MLflow nor Prefect nor boto3 when tracking is off and storage is local.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package: train_step beside us

import train_step as bench  # noqa: E402

from gan_core.config import load_config  # noqa: E402
from gan_core.data.prepared import write_prepared  # noqa: E402
from gan_core.training import Hook, TrainState  # noqa: E402
from gan_core.training.graphed import graph_blocker  # noqa: E402
from gan_core.training.step import GANPhases  # noqa: E402

LOG_EVERY = 100  # steps between reports, as bench/train_step.py's GanCoreStep and `ganpipe train` by default
SMOKE_LOG_EVERY = 4


class ReportTimes(Hook):
    """Rank 0's probe: the time of each metrics report (after the loop's read, a host sync), the
    loop's own samples/s of each interval, and whether the step can be a CUDA graph; written as
    JSON to `path` at the end of the run."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.reports: list[dict[str, float]] = []
        self.graph_blocker: str | None = None

    def on_start(self, state: TrainState) -> None:
        # The worker's runner is not in reach of a hook; the blocker says whether it graphs the step
        # (world size 1: G and D are not wrapped, so plain phases ask what fit()'s would).
        self.graph_blocker = graph_blocker(state, GANPhases(state, None, state.discriminator, state.generator))

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        self.reports.append(
            {"step": step, "time": time.perf_counter(), "samples_per_s": float(metrics["samples_per_s_worker"])}
        )

    def on_end(self, state: TrainState) -> None:
        record = {
            "reports": self.reports,
            "graph_blocker": self.graph_blocker,
            "cuda_graphs": state.config.train.cuda_graphs,
            "device": str(state.device),
            "threads": torch.get_num_threads(),
        }
        Path(self.path).write_text(json.dumps(record))


def report_times_hooks(path: str, rank: int) -> list[Hook]:
    return [ReportTimes(path)] if rank == 0 else []


def rate_after(reports: list[dict[str, float]], warmup: int, batch: int) -> tuple[float, int]:
    """Images/s from the report at step `warmup` to the last report, and the steps that spans."""
    start = next(r for r in reports if r["step"] == warmup)
    end = reports[-1]
    steps = int(end["step"] - start["step"])
    return steps * batch / (end["time"] - start["time"]), steps


def train_through_ray(device: torch.device, batch: int, args: argparse.Namespace, scratch: Path) -> dict:
    """The Ray Train worker's line for `batch`: the same config as the bench's, on the same images."""
    import ray

    from pipelines.train.scaling import Scaling
    from pipelines.train.trainer import load_result_checkpoint, run_trainer, worker_options

    total = args.warmup + args.steps
    data = scratch / f"data-{batch}"
    write_prepared(bench.synthetic_dataset(bench.synthetic_images(batch)), data)
    overrides = bench.gan_core_overrides(
        device, batch, args.precision, args.memory_format, args.cuda_graphs, args.compile, True, args.compile_mode
    )
    overrides += [
        "data.name=prepared", f"data.root={data}", f"train.steps={total}", f"train.log_every={args.log_every}",
        # One checkpoint, after the last report (its cost would fall in a timed interval), and no
        # sample pictures in between (the loop renders them even when no hook keeps them).
        f"train.checkpoint_every={total}", f"train.sample_every={total}",
    ]  # fmt: skip
    config = load_config(None, overrides)
    probe = scratch / f"reports-{batch}.json"
    gpus = 1 if device.type == "cuda" else 0
    scaling = Scaling(workers=1, cpus_per_worker=float(args.worker_cpus), gpus_per_worker=gpus, max_failures=0)
    started = time.perf_counter()
    result = run_trainer(
        worker_options(config, f"ray-gpu-{batch}", str(scratch / "checkpoints")),
        scaling,
        hooks=[functools.partial(report_times_hooks, str(probe))],
    )
    run_s = time.perf_counter() - started
    record = json.loads(probe.read_text())
    rate, timed = rate_after(record["reports"], args.warmup, batch)
    checkpoint_step = int(load_result_checkpoint(result)["step"])
    intervals = [r["samples_per_s"] for r in record["reports"] if r["step"] > args.warmup]
    return {
        "impl": "ray_train",
        "device": bench.device_name(device),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "batch": batch,
        "steps": timed,
        "images_per_s": rate,
        "loop_samples_per_s_median": sorted(intervals)[len(intervals) // 2] if intervals else None,
        "cuda_graph": record["graph_blocker"] is None and record["cuda_graphs"] != "never",
        "graph_blocker": record["graph_blocker"],
        "compiled": args.compile,
        "compile_mode": args.compile_mode if args.compile else None,
        "worker_device": record["device"],
        "worker_threads": record["threads"],
        "checkpoint_step": checkpoint_step,
        "checkpoint_ok": checkpoint_step == total,
        "ray_run_s": run_s,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="a few steps at batch 2 on CPU (the path, not speed)")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default: 64 1024 (CUDA), 2 (smoke)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps, whole report intervals (1000)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first, whole report intervals (200)")
    parser.add_argument("--compile", action="store_true", help="train.compile=true on both sides")
    parser.add_argument("--compile-mode", default="default", choices=["default", "max-autotune"])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--memory-format", default="auto", choices=["auto", "channels_last", "contiguous"])
    parser.add_argument("--cuda-graphs", default="auto", choices=["auto", "always", "never"])
    parser.add_argument("--worker-cpus", type=int, default=None, help="CPUs the worker reserves (its torch threads)")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    args.device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        parser.error("no CUDA device here; --cpu-smoke runs a few steps on CPU")
    args.batches = args.batches or ([2] if smoke else [64, 1024])
    # Rates are read between reports, so both step counts are whole report intervals; the smoke
    # run reports every few steps to stay short.
    args.log_every = SMOKE_LOG_EVERY if smoke else LOG_EVERY
    for given in (args.steps, args.warmup):
        if given is not None and (given <= 0 or given % args.log_every):
            parser.error(f"--steps and --warmup must be positive multiples of {args.log_every} (the report interval)")
    args.worker_cpus = args.worker_cpus or (1 if smoke else max(1, min(8, (os.cpu_count() or 2) // 2)))
    # What bench/train_step.py's measure_one_process reads.
    args.fresh_fakes, args.reference_tf32 = False, False
    args.threads = args.worker_cpus
    return args


def for_batch(args: argparse.Namespace, batch: int) -> argparse.Namespace:
    """`args` with the step counts for `batch`: unless given, 2 report intervals timed after 1 in the
    smoke run; on CUDA 1000 after 200 up to batch 256, 300 after 100 above (some 5 s at batch 1024)."""
    small = batch <= 256
    default_steps, default_warmup = (2, 1) if args.cpu_smoke else ((10, 2) if small else (3, 1))
    return argparse.Namespace(
        **{
            **vars(args),
            "steps": args.steps or default_steps * args.log_every,
            "warmup": args.warmup or default_warmup * args.log_every,
        }
    )


def emit(line: dict, out: str | None) -> None:
    bench.emit(line)
    if out:
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in line.items()}
        with open(out, "a") as file:
            file.write(json.dumps(rounded) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # the device machine reaches nothing outside
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)  # the worker gets as many threads as CPUs it reserves
    torch.backends.cudnn.benchmark = device.type == "cuda"

    import ray

    cpus = args.worker_cpus + 1
    ray.init(
        num_cpus=cpus,
        num_gpus=1 if device.type == "cuda" else 0,
        include_dashboard=False,
        log_to_driver=True,
        object_store_memory=512 * 2**20,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="ray-gpu-") as folder:
            for batch in args.batches:
                run = for_batch(args, batch)
                # The bench's figure: the same steps, warm-up and report rhythm, in this process.
                local = bench.measure_one_process("gan_core", device, batch, run)
                emit(local, args.out)
                through_ray = train_through_ray(device, batch, run, Path(folder))
                through_ray["bench_images_per_s"] = local["images_per_s"]
                through_ray["ratio_to_bench"] = through_ray["images_per_s"] / local["images_per_s"]
                through_ray["within_10pct"] = through_ray["ratio_to_bench"] >= 0.9
                emit(through_ray, args.out)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
