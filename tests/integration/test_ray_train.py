"""Ray Train end to end: two CPU workers, checkpoints in a local S3 server, an MLflow server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from gan_core.config import ConfigError, load_config, preset_path
from gan_core.training import NonFiniteLossError, load_checkpoint
from pipelines.storage.location import Storage, StorageError
from pipelines.tracking.runs import step_images
from pipelines.train.driver import train_distributed
from pipelines.train.reporter import FRAMES
from pipelines.train.scaling import Scaling
from tests.integration.conftest import bucket_keys
from tests.support.crashes import CrashOnce

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHORT = ["data.n_train=5000", "train.log_every=1", "train.checkpoint_every=50", "train.sample_every=1000"]


def _config(steps: int):
    return load_config(preset_path("ring"), [*SHORT, f"train.steps={steps}"])


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def test_two_workers_train_resume_and_log(settings, ray_cluster):
    result = train_distributed(
        _config(100), "ring-2w", Scaling(workers=2), settings, log=lambda _: None, register_as="ring-2w"
    )
    assert result.steps == 100 and not result.resumed and result.registered_version == "1"

    # Checkpoints are objects in the bucket, written through Ray's storage.
    keys = bucket_keys(f"runs-{settings.home.name}/checkpoints/ring-2w/")
    assert sum(k.endswith("/state.pt") for k in keys) == 2, keys

    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["optim.lr_g"] == "0.0005" and run.data.tags["dataset.name"] == "ring"
    assert run.data.tags["dataset.version"] and run.data.tags["code.version"]
    assert not any(re.search("testing|secret", v, re.I) for v in run.data.params.values())
    for key in (
        "d_loss",
        "g_loss",
        "d_real",
        "d_fake",
        "d_grad_norm",
        "g_grad_norm",
        "samples_per_s",
        "samples_per_s_worker",
        "eval/modes",
    ):
        assert key in run.data.metrics, key
    # Both ranks held identical weights after every one of the 100 steps.
    spread = _history(client, result.run_id, "rank_weight_spread")
    assert [s for s, _ in spread] == list(range(1, 101)) and all(v == 0.0 for _, v in spread)
    # Rank 0's collapse watch: coverage about ten times a run, as a curve in MLflow.
    assert [s for s, _ in _history(client, result.run_id, "coverage")] == list(range(10, 101, 10))
    # The pictures `--local` writes, from a Ray run too.
    pictures = {a.path for a in client.list_artifacts(result.run_id, "samples")}
    assert {"samples/final.png", "samples/curves.png", "samples/training.gif"} <= pictures, pictures
    assert list(step_images(client, result.run_id, FRAMES))  # the frames, with a step slider in the UI
    # The model's artifacts live in the bucket, behind the MLflow server; it loads and generates.
    assert any(k.startswith("mlflow/") for k in bucket_keys("mlflow/"))
    mlflow.set_tracking_uri(settings.tracking_uri)
    points = mlflow.pyfunc.load_model(result.model_uri).predict(pd.DataFrame({"count": [5], "seed": [0]}))
    assert points.shape == (5, 2) and np.isfinite(points).all()

    # The full protocol on the logged model: JSON with bootstrap intervals, and an MLflow run.
    from pipelines.cli.main import main

    report_path = settings.home / "eval.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
        patch.setenv("GANPIPE_EXPERIMENT", settings.experiment)
        patch.setenv("GANPIPE_HOME", str(settings.home))
        assert main(["evaluate", result.model_uri, "--bootstrap", "20", "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())["metrics"]
    assert report["high_quality"]["ci_low"] <= report["high_quality"]["value"] <= report["high_quality"]["ci_high"]
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    evaluations = client.search_runs([experiment], "tags.`ganpipe.kind` = 'evaluation'")
    assert evaluations and "high_quality_ci_low" in evaluations[0].data.metrics
    assert evaluations[0].data.tags["ganpipe.model_run_id"] == result.run_id

    # Same name, more steps: continues from step 100 in the same MLflow run.
    again = train_distributed(_config(150), "ring-2w", Scaling(workers=2), settings, log=lambda _: None)
    assert again.resumed and again.run_id == result.run_id and again.steps == 150
    steps = [s for s, _ in _history(client, result.run_id, "d_loss")]
    assert steps == list(range(1, 151))

    # Fewer steps than it has trained: Ray would train nothing and log the generator once more.
    with pytest.raises(ConfigError, match="train.steps=120 is not allowed: run ring-2w has trained 150 steps"):
        train_distributed(_config(120), "ring-2w", Scaling(workers=2), settings, log=lambda _: None)
    assert len(client.search_model_versions("name='ring-2w'")) == 1


def test_a_killed_worker_is_replaced_and_training_resumes_from_the_checkpoint(settings, ray_cluster, tmp_path: Path):
    marker = tmp_path / "crashed"
    crash = CrashOnce(at_step=70, marker=str(marker), kind="exit", rank=1)
    result = train_distributed(
        _config(100), "ring-fault", Scaling(workers=2), settings, log=lambda _: None, hooks=[crash]
    )
    assert marker.read_text() == "70"
    assert result.steps == 100
    steps = [s for s, _ in _history(MlflowClient(settings.tracking_uri), result.run_id, "d_loss")]
    # Steps 51..70 ran twice: before the crash, and again from the step-50 checkpoint. Metrics
    # reach MLflow in the background, so the crashed attempt's may have arrived or not; every
    # step up to the checkpoint arrived exactly once (held ones travel in the checkpoint).
    assert set(steps) == set(range(1, 101)) and 1 <= steps.count(60) <= 2
    assert all(steps.count(step) == 1 for step in range(1, 51))


def test_a_diverged_run_stops_at_once_with_its_cause_and_is_not_retried(settings, ray_cluster, tmp_path: Path):
    """Ray would start failed workers again from the last checkpoint, to diverge again: the run
    ends the first time instead, failed, with the step and the ranks that saw it."""
    marker = tmp_path / "poisoned"
    crash = CrashOnce(at_step=70, marker=str(marker), kind="nan", rank=1)  # once: a retry would pass
    with pytest.raises(NonFiniteLossError, match=r"non-finite training metrics by step 71: .*rank 1: \{"):
        train_distributed(_config(100), "ring-nan", Scaling(workers=2), settings, log=lambda _: None, hooks=[crash])
    assert marker.read_text() == "70"
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    run = client.search_runs([experiment], "attributes.run_name = 'ring-nan'")[0]
    assert run.info.status == "FAILED"
    steps = [s for s, _ in _history(client, run.info.run_id, "d_loss")]
    assert steps == list(range(1, 71))  # the metrics up to the divergence arrived, once each
    keys = bucket_keys(f"runs-{settings.home.name}/checkpoints/ring-nan/")
    assert sum(k.endswith("/state.pt") for k in keys) == 1, keys  # the step-50 one, intact
    assert not [k for k in keys if "diverged-" in k]  # the record was read and removed


def test_more_workers_than_the_cluster_holds_are_refused_before_a_run_is_opened(settings, ray_cluster):
    """Ray Train V2 tried again every 60 s, for ever, to start a worker group no node could hold
    (measured: `ganpipe train --workers 4` on a 2-CPU machine)."""
    from pipelines.cluster.room import cluster_capacity

    capacity = cluster_capacity(may_grow=False)  # the fixture's local cluster: one node
    assert len(capacity.nodes) == 1 and capacity.total["CPU"] == 4.0
    refusal = (
        r"the local Ray cluster cannot hold 2 worker\(s\) of \{CPU: 3\} each: "
        r"its nodes have room for 1 \(\{CPU: 4\}\)\. Ask for fewer --workers, "
        r"or a smaller --cpus-per-worker or --gpus-per-worker, or run on a cluster \(RAY_ADDRESS\)"
    )
    with pytest.raises(ValueError, match=refusal):
        train_distributed(
            _config(100), "ring-3cpu", Scaling(workers=2, cpus_per_worker=3), settings, log=lambda _: None
        )
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    assert experiment is None or not client.search_runs([experiment.experiment_id], "attributes.run_name = 'ring-3cpu'")
    assert not [k for k in bucket_keys(f"runs-{settings.home.name}/checkpoints/ring-3cpu/") if "lease" in k]


def test_a_run_waits_for_room_on_a_busy_cluster_with_one_line_per_startup_timeout(settings, ray_cluster, monkeypatch):
    """Ray Train's controller gives up on a worker group it cannot place every startup timeout and
    asks again; each give-up was two tracebacks in its log (about 65 lines), now one line."""
    import ray

    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "2")  # Ray Train hands it to the controller
    hog = ray.remote(num_cpus=ray.available_resources()["CPU"])(Hog).remote()
    ray.get(hog.ping.remote())
    waited = "no room yet for 1 worker(s): other work holds the cluster's resources"
    earlier = _controllers()
    twice = lambda: _controller_log(earlier).count(waited) >= 2  # noqa: E731
    freeing = threading.Thread(target=_kill_when, args=(hog, twice, 90))
    freeing.start()
    try:
        result = train_distributed(_config(20), "ring-busy", Scaling(workers=1), settings, log=lambda _: None)
    finally:
        freeing.join()
    assert result.steps == 20
    log = _controller_log(earlier)
    assert log.count(waited) >= 2, log[-3000:]
    assert "Traceback" not in log and "WorkerGroupStartupTimeoutError" not in log, log[-3000:]


class Hog:
    def ping(self) -> bool:
        return True


def _kill_when(actor, condition, timeout: float) -> None:
    """Free the cluster once `condition` holds, or after `timeout` seconds (then the test fails)."""
    import ray

    deadline = time.monotonic() + timeout
    try:
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:  # else the run would wait for room for ever
        ray.kill(actor)


def _controllers() -> set[str]:
    from ray.util.state import list_actors

    return {actor.actor_id for actor in list_actors(filters=[("class_name", "=", "TrainController")])}


def _controller_log(earlier: set[str]) -> str:
    """The stderr of the Ray Train controller started since `earlier` ('' before it runs)."""
    from ray.util.state import get_log
    from ray.util.state.exception import RayStateApiException

    started = _controllers() - earlier
    if not started:
        return ""
    try:
        return "".join(get_log(actor_id=started.pop(), suffix="err"))
    except RayStateApiException:  # its process is still starting
        return ""


def test_a_sigterm_while_publishing_marks_the_run_killed_and_frees_it(settings, ray_cluster, monkeypatch):
    """After training, SIGTERM meets Ray's handler in the driver, which calls sys.exit: the MLflow
    run used to stay RUNNING (SystemExit is no Exception)."""
    import pipelines.train.driver

    def terminated(*args, **kwargs):
        raise SystemExit(15)  # what Ray's sigterm_handler raises

    monkeypatch.setattr(pipelines.train.driver, "publish_generator", terminated)
    with pytest.raises(SystemExit):
        train_distributed(_config(20), "ring-term", Scaling(workers=1), settings, log=lambda _: None)
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    [run] = client.search_runs([experiment], "attributes.run_name = 'ring-term'")
    assert run.info.status == "KILLED"
    assert not [k for k in bucket_keys(f"runs-{settings.home.name}/checkpoints/ring-term/") if "lease" in k]


def test_bad_storage_fails_fast_with_the_uri_and_cause(s3):
    with pytest.raises(StorageError, match=r"s3://no-such-bucket/x: bucket 'no-such-bucket' does not exist"):
        Storage.from_uri("s3://no-such-bucket/x").check()
    with pytest.raises(StorageError, match="gs://bucket-x: unsupported storage scheme 'gs'"):
        Storage.from_uri("gs://bucket-x")
    with pytest.raises(StorageError, match="s3://ab: an S3 URI needs a bucket name of 3"):
        Storage.from_uri("s3://ab")


def test_cli_trains_on_the_embedded_default_and_shows_progress(tmp_path: Path):
    """No services configured: SQLite MLflow store, local artifacts, local checkpoint folder, a
    local Ray cluster of the command's own, as a user's first `ganpipe train` runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GANPIPE_", "RAY_", "AWS_"))}
    settings = ["train.steps=20", "train.checkpoint_every=10", "train.log_every=10", "data.n_train=2000"]
    command = [sys.executable, "-m", "pipelines.cli", "train", "--preset", "ring", "--name", "embedded"]
    command += ["--workers", "1", *(f"--set={setting}" for setting in settings)]
    done = subprocess.run(
        command, env={**env, "GANPIPE_HOME": str(tmp_path)}, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Rank 0's progress lines reach the command's output through Ray's log forwarding.
    assert "starting: 20 steps, batch 256, device cpu" in done.stderr
    assert re.search(r"step 10/20 \( ?50%\) \| .* samples/s \| elapsed .* ETA .* \| d_loss", done.stderr)
    assert done.stderr.count("step 20/20 (100%)") == 1  # once: Ray Train's print also logs what it prints
    assert "PreemptionWatcher" not in done.stderr  # Ray's error-level line about its own actor, in every run
    assert (tmp_path / "mlflow.db").is_file()
    assert len(list((tmp_path / "storage" / "checkpoints" / "embedded").glob("checkpoint_*/state.pt"))) == 2
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("ganpipe").experiment_id])[0]
    assert run.info.status == "FINISHED" and "eval/high_quality" in run.data.metrics
    assert list((tmp_path / "mlartifacts").rglob("MLmodel"))


STOP_SETTINGS = [
    "train.checkpoint_every=100000", "train.log_every=20", "train.sample_every=100000", "data.n_train=2000",
]  # fmt: skip


def test_ctrl_c_stops_distributed_training_with_a_checkpoint_and_the_same_command_resumes(tmp_path: Path):
    """Ctrl-C reaches the whole process group, as a terminal sends it: Ray's own handler would
    abort the workers at once, losing the steps since the last periodic checkpoint."""
    command, env = _train_command(tmp_path)
    stopped_at = _stopped_by(signal.SIGINT, command, env, tmp_path)

    # The same command, with a step budget it can reach, takes up at the step it stopped at.
    done = subprocess.run(
        [*command, f"--set=train.steps={stopped_at + 20}"], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming at step {stopped_at}: {stopped_at + 20} steps" in done.stderr
    [finished] = _runs(tmp_path)
    assert finished.info.status == "FINISHED"


def test_sigterm_to_the_process_group_stops_training_on_the_local_ray_cluster_with_a_checkpoint(tmp_path: Path):
    """GNU `timeout`, systemd and a Prefect worker cancelling a flow run send SIGTERM to the whole
    process group, which holds the local Ray cluster this command started: its GCS and raylet
    shut down at once, and the command hung until it was killed, without a checkpoint."""
    command, env = _train_command(tmp_path)
    _stopped_by(signal.SIGTERM, command, env, tmp_path)


def _train_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GANPIPE_", "RAY_", "AWS_"))}
    env["GANPIPE_HOME"] = str(tmp_path)
    command = [sys.executable, "-m", "pipelines.cli", "train", "--preset", "ring", "--name", "stopped"]
    return [*command, "--workers", "2", *(f"--set={setting}" for setting in STOP_SETTINGS)], env


def _stopped_by(signum: signal.Signals, command: list[str], env: dict[str, str], tmp_path: Path) -> int:
    """Send `signum` to the command's process group at step 100; check the stop and return its step."""
    run = subprocess.Popen(
        [*command, "--set=train.steps=100000"], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    seen = []
    for line in run.stderr:
        seen.append(line)
        if "step 100/100000" in line:
            os.killpg(run.pid, signum)
            break
    seen += run.communicate(timeout=180)[1].splitlines(keepends=True)
    err = "".join(seen)
    assert run.returncode == 128 + signum, err[-3000:]
    assert f"{signum.name}: the workers stop within seconds with a checkpoint" in err
    stopped_at = int(re.search(rf"ganpipe train: stopped at step (\d+) \({signum.name}\)", err).group(1))
    assert stopped_at > 100, stopped_at  # two ranks agree on the step (at a check, about once a second)
    folder = tmp_path / "storage" / "checkpoints" / "stopped"
    newest = max(folder.glob("checkpoint_*/state.pt"))
    assert load_checkpoint(newest)["step"] == stopped_at
    assert not list(folder.glob("stop-*"))  # the driver's message to the workers is gone
    assert _runs(tmp_path)[0].info.status == "KILLED"
    return stopped_at


def _runs(tmp_path: Path) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("ganpipe").experiment_id])


def test_cli_reports_bad_storage_before_training(monkeypatch, tmp_path: Path, s3, capsys):
    from pipelines.cli.main import main

    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("GANPIPE_STORAGE", "s3://missing-bucket/runs")
    assert main(["train", "--preset", "ring", "--set", "train.steps=5"]) == 2
    assert "s3://missing-bucket/runs: bucket 'missing-bucket' does not exist" in capsys.readouterr().err
