"""Rank 0 of a tracked run watches for mode collapse; the driver reads the curve back after training."""

from __future__ import annotations

from types import SimpleNamespace

from gan_core.config import load_config, preset_path
from gan_core.data import load_dataset
from gan_core.metrics import CollapseWatch
from gan_core.outputs.progress import ProgressPrinter
from pipelines.train.driver import late_collapse
from pipelines.train.options import Attempt, WorkerOptions
from pipelines.train.reporter import RayReporter
from pipelines.train.worker import train_hooks


def test_rank_0_of_a_tracked_run_measures_coverage_before_the_reporter_logs_the_metrics(tmp_path):
    ring = load_dataset("ring", n_train=2000)
    config = load_config(preset_path("ring"), ["data.n_train=2000", "train.steps=4000", "train.log_every=100"])
    tracked = WorkerOptions(config, Attempt.new(str(tmp_path), "r"), run_id="abc", tracking_uri="http://127.0.0.1:9")

    hooks = train_hooks(0, 2, ring, tracked)
    assert [type(h) for h in hooks] == [CollapseWatch, RayReporter, ProgressPrinter]
    assert hooks[0].every == 400  # about ten measurements a run, on the metrics' cadence (log_every)
    assert [type(h) for h in train_hooks(1, 2, ring, tracked)] == [RayReporter]  # rank 0 speaks for the run
    untracked = WorkerOptions(config, Attempt.new(str(tmp_path), "r"))  # a bench: no curve to draw
    assert [type(h) for h in train_hooks(0, 1, ring, untracked)] == [RayReporter, ProgressPrinter]


class _Run:
    """An MLflow client holding one run's coverage curve."""

    def __init__(self, curve: list[tuple[int, float]]):
        self.curve, self.tags = curve, {}

    def get_metric_history(self, run_id: str, key: str):
        assert key == "coverage"
        return [SimpleNamespace(step=step, value=value) for step, value in self.curve]

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.tags[key] = value


def test_modes_lost_late_are_said_and_tagged_on_the_run_and_a_steady_run_is_left_alone():
    lines: list[str] = []
    lost = _Run([(100, 0.5), (200, 1.0), (300, 1.0), (400, 0.625)])
    said = late_collapse(lost, "abc", lines.append)
    assert said == "coverage fell from 1.00 at step 200 to 0.62 at step 400 and ended there"
    assert lost.tags == {"collapse.late": said} and lines == [f"mode collapse late in training: {said}"]

    steady = _Run([(100, 0.5), (200, 1.0), (300, 0.875), (400, 1.0)])
    assert late_collapse(steady, "abc", lines.append) is None and steady.tags == {} and len(lines) == 1
