"""bench/ray_gpu.py: its CPU smoke mode runs the project's Ray Train worker end to end, without
the tracking and S3 libraries a GPU machine lacks; and how it reads a rate off the reports."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "bench" / "ray_gpu.py"
# What the GPU machine has none of, and a worker that tracks nothing must not need.
ABSENT = ("mlflow", "prefect", "boto3", "s3transfer")


def load_script():
    spec = importlib.util.spec_from_file_location("ray_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rate_is_read_from_the_report_ending_the_warmup_to_the_last():
    ray_gpu = load_script()
    reports = [
        {"step": s, "time": t, "samples_per_s": 0.0} for s, t in ((100, 5.0), (200, 9.0), (300, 10.0), (400, 11.0))
    ]
    rate, steps = ray_gpu.rate_after(reports, warmup=200, batch=64)
    assert steps == 200 and rate == pytest.approx(200 * 64 / 2.0)


def test_step_counts_must_be_whole_report_intervals():
    ray_gpu = load_script()
    with pytest.raises(SystemExit):
        ray_gpu.parse_args(["--cpu-smoke", "--steps", "6"])  # the smoke run reports every 4 steps
    args = ray_gpu.parse_args(["--cpu-smoke"])
    run = ray_gpu.for_batch(args, 2)
    assert args.device == "cpu" and run.steps % args.log_every == 0 and run.warmup % args.log_every == 0


@pytest.mark.slow
def test_cpu_smoke_trains_through_ray_without_tracking_libraries(tmp_path):
    """A few steps through Ray Train on CPU (about 40 s, most of it Ray starting): one line for
    the bench's step and one for the worker's, whose final checkpoint holds the last step."""
    hide = tmp_path / "hide"
    hide.mkdir()
    # In every process of the run, Ray's workers included (they inherit PYTHONPATH): these are absent.
    (hide / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in ABSENT)
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hide), str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    out = tmp_path / "lines.jsonl"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["impl"] for line in lines] == ["gan_core", "ray_train"]
    bench, worker = lines
    assert bench["batch"] == worker["batch"] == 2 and worker["worker_device"] == "cpu"
    assert worker["checkpoint_ok"] and worker["steps"] == bench["steps"]
    assert worker["images_per_s"] > 0 and worker["ratio_to_bench"] == pytest.approx(
        worker["images_per_s"] / worker["bench_images_per_s"], rel=1e-2
    )
