"""Ray Tune end to end on the ring: ASHA, PBT, Optuna, resume; MLflow children; storage in S3."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from gan_core.config import load_config, preset_path
from pipelines.tune.search import SearchOptions, run_search
from tests.integration.conftest import bucket_keys
from tests.support.crashes import CrashOnce, FailsEveryAttempt

pytestmark = pytest.mark.integration

BASE = ["data.n_train=5000", "train.steps=800"]


def _space(tmp_path: Path, content: dict) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


def _base():
    return load_config(preset_path("ring"), BASE)


def test_asha_stops_weak_trials_and_finds_the_better_config(settings, ray_cluster, tmp_path: Path):
    # R1 off makes this MLP GAN miss the ring's modes; R1 on captures them (see the ring preset).
    space = _space(tmp_path, {"loss.r1_weight": {"grid": [0.0, 0.05]}, "optim.lr_d": {"choice": [5.0e-4]}})
    options = SearchOptions(space=space, num_samples=2, milestones=4, eval_samples=500)
    result = run_search(_base(), options, "asha", settings, log=lambda _: None)

    assert len(result.trials) == 4
    assert any(t["milestones"] < 4 for t in result.trials), result.trials  # stopped early
    objectives = sorted(t["objective"] for t in result.trials)
    assert objectives[-1] > objectives[0]
    assert result.best_config.loss.r1_weight == 0.05
    for name in ("best.yaml", "results.csv", "results.md", "best_samples.png"):
        assert (result.folder / name).is_file(), name
    best = load_config(result.folder / "best.yaml")  # what `ganpipe train --config` accepts
    # The search's own cadence (a checkpoint at each milestone) is not the config to train with.
    base = _base().train
    assert (best.train.checkpoint_every, best.train.log_every) == (base.checkpoint_every, base.log_every)

    # Trial checkpoints are in the bucket; the parent MLflow run has a child per trial.
    assert any("/tune/asha/" in k and k.endswith("state.pt") for k in bucket_keys(f"runs-{settings.home.name}/"))
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert len(children) == 4
    assert all("objective" in c.data.metrics and "high_quality" in c.data.metrics for c in children)
    assert {c.info.status for c in children} == {"FINISHED"}  # Tune ends trials; they stayed RUNNING


def test_pbt_exploits_a_checkpoint(settings, ray_cluster, tmp_path: Path):
    # Two trials run side by side; at each milestone the lower one copies the upper one's checkpoint.
    space = _space(tmp_path, {"optim.lr_g": {"loguniform": [2.0e-4, 1.0e-3]}, "loss.r1_weight": {"choice": [0.0, 0.1]}})
    options = SearchOptions(space=space, num_samples=2, scheduler="pbt", milestones=4, eval_samples=500)
    result = run_search(_base(), options, "pbt", settings, log=lambda _: None)
    assert len(result.trials) == 2
    assert len({t["trial"] for t in result.trials}) == 2, result.trials  # each trial its own result
    assert all(t["milestones"] == 4 for t in result.trials), result.trials
    assert sum(t["exploits"] for t in result.trials) >= 1, result.trials


def test_optuna_search_runs(settings, ray_cluster, tmp_path: Path):
    space = _space(
        tmp_path, {"optim.lr_g": {"loguniform": [2.0e-4, 1.0e-3]}, "loss.r1_weight": {"uniform": [0.05, 0.2]}}
    )
    base = load_config(preset_path("ring"), ["data.n_train=5000", "train.steps=200"])
    options = SearchOptions(
        space=space, num_samples=2, search="optuna", scheduler="fifo", milestones=2, eval_samples=300
    )
    result = run_search(base, options, "optuna", settings, log=lambda _: None)
    assert len(result.trials) == 2 and all(t["milestones"] == 2 for t in result.trials)


def test_trials_train_on_two_ray_train_workers(settings, ray_cluster, tmp_path: Path):
    # Each trial drives a TorchTrainer of 2 workers (1 CPU each); the cluster's 4 CPUs fit both at once.
    space = _space(tmp_path, {"loss.r1_weight": {"grid": [0.05, 0.1]}})
    base = load_config(preset_path("ring"), ["data.n_train=2000", "train.steps=100"])
    options = SearchOptions(space=space, scheduler="fifo", num_samples=1, milestones=2, eval_samples=300)
    options = replace(options, workers_per_trial=2, cpus_per_trial=2)
    result = run_search(base, options, "workers", settings, log=lambda _: None)

    assert len(result.trials) == 2 and all(t["milestones"] == 2 for t in result.trials), result.trials
    # Tune got the Train workers' reports: their checkpoints live in each trial's Train run.
    assert all("/tune/workers/trainers/" in t["checkpoint"] for t in result.trials), result.trials
    assert (result.folder / "best_samples.png").is_file()
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert len(children) == 2
    for child in children:
        metrics = child.data.metrics
        assert "objective" in metrics and metrics["workers"] == 2
        assert metrics["samples_per_s"] == pytest.approx(2 * metrics["samples_per_s_worker"])


def test_a_multi_worker_trial_that_fails_every_attempt_ends_after_max_failures_retries(
    settings, ray_cluster, tmp_path: Path
):
    """Ray Train restarts a trial's failed workers; Tune used to start the whole trial again on
    top, each time with a fresh Ray Train budget: 3 x 3 attempts of a trial that cannot train."""
    space = _space(tmp_path, {"loss.r1_weight": {"choice": [0.1]}})
    options = SearchOptions(space=space, scheduler="fifo", num_samples=1, milestones=2, eval_samples=300)
    options = replace(options, workers_per_trial=2, cpus_per_trial=2, max_failures=1)
    attempts = tmp_path / "attempts"
    crash = FailsEveryAttempt(at_step=0, marker=str(attempts))
    base = load_config(preset_path("ring"), ["data.n_train=2000", "train.steps=100"])
    with pytest.raises(RuntimeError, match="no trial reported a result") as raised:
        run_search(base, options, "fails", settings, log=lambda _: None, hooks=[crash])

    assert len(attempts.read_text().splitlines()) == 2  # the first and --max-failures 1 more
    assert re.search(r"failed after 2 attempts: RuntimeError: fails at step \d+ on every attempt", str(raised.value))
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    [parent] = client.search_runs([experiment], "attributes.run_name = 'search-fails'")
    [child] = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert child.info.status == "FAILED"


@pytest.mark.parametrize(
    ("error", "status"),
    [(SystemExit(15), "KILLED"), (RuntimeError("no trial reported a result"), "FAILED")],
    ids=["sigterm-after-fit", "error-after-fit"],
)
def test_a_search_that_ends_after_its_trials_records_how(settings, ray_cluster, tmp_path, monkeypatch, error, status):
    """After fit(), a SIGTERM meets Ray's handler in the driver (sys.exit) and a summary can fail:
    the search's parent MLflow run used to stay RUNNING in both cases."""
    import pipelines.tune.search

    def ended(*args, **kwargs):
        raise error

    monkeypatch.setattr(pipelines.tune.search, "summarise", ended)
    space = _space(tmp_path, {"loss.r1_weight": {"choice": [0.1]}})
    options = SearchOptions(space=space, num_samples=1, milestones=1, eval_samples=300, scheduler="fifo")
    name = f"ends-{status.lower()}"
    with pytest.raises(type(error)):
        run_search(load_config(preset_path("ring"), ["train.steps=100"]), options, name, settings, log=lambda _: None)
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    [parent] = client.search_runs([experiment], f"attributes.run_name = 'search-{name}'")
    assert parent.info.status == status
    assert not [k for k in bucket_keys(f"runs-{settings.home.name}/tune/{name}/") if k.endswith("lease.json")]


def test_a_trial_whose_process_dies_resumes_from_its_checkpoint_and_one_that_diverges_ends(
    settings, ray_cluster, tmp_path: Path
):
    """Before, a trial whose process died (a node lost) ended in ERROR and was not run again; with
    retries on, a diverged trial would have been started again only to diverge again."""
    space = _space(tmp_path, {"loss.r1_weight": {"grid": [0.05, 0.1]}})
    options = SearchOptions(space=space, num_samples=1, milestones=4, eval_samples=300, scheduler="fifo")
    died, diverged = tmp_path / "died", tmp_path / "diverged"
    crashes = (
        CrashOnce(at_step=350, marker=str(died), kind="exit", in_train_run=False),  # at step 400, before its checkpoint
        CrashOnce(at_step=450, marker=str(diverged), kind="nan", in_train_run=False),  # NaN from 500, found at 600
    )
    base = load_config(preset_path("ring"), [*BASE, "train.log_every=100"])
    result = run_search(base, options, "faults", settings, log=lambda _: None, hooks=crashes)

    assert died.read_text() == "400" and diverged.read_text() == "500"
    [ended] = [t for t in result.trials if t["stop_reason"].startswith("diverged: ")]
    assert "non-finite training metrics by step 600" in ended["stop_reason"]
    assert math.isnan(ended["objective"]) and ended["step"] == 600
    [other] = [t for t in result.trials if t is not ended]
    assert not other["stop_reason"].startswith(("error", "diverged")), other  # ended as trials end
    assert result.best_objective == other["objective"]
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert len(children) == 2  # the restarted trial went on in its own child run
    for child in children:  # resumed at its checkpoint: no milestone evaluated twice
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "objective")]
        assert len(steps) == len(set(steps)) and 200 in steps, steps


def test_an_interrupted_search_resumes(settings, ray_cluster, tmp_path: Path, capsys):
    space = _space(tmp_path, {"loss.r1_weight": {"grid": [0.05, 0.1, 0.2]}})
    env = {
        **os.environ,
        "GANPIPE_HOME": str(settings.home),
        "GANPIPE_STORAGE": settings.storage_uri,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "GANPIPE_EXPERIMENT": settings.experiment,
        "RAY_ADDRESS": ray_address(),
    }
    command = [sys.executable, "-m", "pipelines.cli", "tune", "--preset", "ring", "--space", space,
               "--name", "resumable", "--num-samples", "1", "--milestones", "4", "--eval-samples", "300",
               "--max-concurrent", "1", "--scheduler", "fifo", *sum((["--set", o] for o in BASE), [])]  # fmt: skip
    log = (tmp_path / "search.log").open("w")
    search = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    prefix = f"runs-{settings.home.name}/tune/resumable/"
    deadline = time.monotonic() + 240
    while not any(k.endswith("state.pt") for k in bucket_keys(prefix)):
        assert search.poll() is None, (tmp_path / "search.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial checkpoint appeared"
        time.sleep(1)
    os.killpg(search.pid, signal.SIGINT)  # Ctrl-C: Tune saves its state and stops
    search.wait(timeout=120)
    # Tune returns from fit() as if the search had ended: the command says it did not, and
    # names no best config from trials cut short.
    output = (tmp_path / "search.log").read_text()
    assert search.returncode == 130, output[-3000:]
    assert re.search(r"ganpipe tune: search resumable interrupted by Ctrl-C \([123] of 3 trial\(s\) started", output)
    assert "ganpipe tune --resume resumable" in output and "best config" not in output
    assert not (settings.home / "tune" / "resumable" / "best.yaml").exists()

    from pipelines.cli.main import main

    os.environ.update(
        {k: env[k] for k in ("GANPIPE_HOME", "GANPIPE_STORAGE", "MLFLOW_TRACKING_URI", "GANPIPE_EXPERIMENT")}
    )
    try:
        assert main(["tune", "--resume", "resumable"]) == 0
    finally:
        for key in ("GANPIPE_HOME", "GANPIPE_STORAGE", "MLFLOW_TRACKING_URI", "GANPIPE_EXPERIMENT"):
            os.environ.pop(key, None)
    assert "resuming search resumable" in capsys.readouterr().err
    rows = (settings.home / "tune" / "resumable" / "results.csv").read_text().splitlines()
    assert len(rows) == 4  # header and the three grid points, all finished


def ray_address() -> str:
    import ray

    return ray.get_runtime_context().gcs_address
