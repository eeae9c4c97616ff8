"""The runtime env every ganpipe job gives Ray: the log hook and a quicker Ray Train poll, each
left out where a submitted Ray job already sets it (Ray refuses to merge two)."""

from __future__ import annotations

import importlib
import json

import pytest

from pipelines.cluster.job_env import HEALTH_CHECK_INTERVAL, ray_runtime_env
from pipelines.runtime.logs import RAY_SETUP_HOOK, ray_worker_setup

JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


@pytest.fixture(autouse=True)
def no_job_no_interval(monkeypatch):
    monkeypatch.delenv(JOB_CONFIG_ENV, raising=False)
    monkeypatch.delenv(HEALTH_CHECK_INTERVAL, raising=False)


def test_a_job_runs_the_log_hook_and_polls_its_workers_every_half_second():
    assert ray_runtime_env() == {
        "worker_process_setup_hook": RAY_SETUP_HOOK,
        "env_vars": {HEALTH_CHECK_INTERVAL: "0.5"},
    }
    module, _, name = RAY_SETUP_HOOK.rpartition(".")
    assert getattr(importlib.import_module(module), name) is ray_worker_setup


def test_the_users_own_poll_interval_is_kept(monkeypatch):
    monkeypatch.setenv(HEALTH_CHECK_INTERVAL, "3")
    assert ray_runtime_env()["env_vars"] == {HEALTH_CHECK_INTERVAL: "3"}


def test_what_a_submitted_job_sets_is_left_to_it(monkeypatch):
    theirs = {"worker_process_setup_hook": "theirs.setup", "env_vars": {HEALTH_CHECK_INTERVAL: "1"}}
    monkeypatch.setenv(JOB_CONFIG_ENV, json.dumps({"runtime_env": theirs}))
    assert ray_runtime_env() == {}
    monkeypatch.setenv(JOB_CONFIG_ENV, json.dumps({"runtime_env": {"pip": ["x"], "env_vars": {"OTHER": "1"}}}))
    assert ray_runtime_env() == {
        "worker_process_setup_hook": RAY_SETUP_HOOK,
        "env_vars": {HEALTH_CHECK_INTERVAL: "0.5"},
    }


def test_ray_is_started_and_joined_with_it(monkeypatch):
    import ray

    from pipelines.cluster.connect import ensure_ray

    asked = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: asked.append(kwargs))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr("pipelines.cluster.local.stop_without_grace", lambda: True)
    monkeypatch.setattr("pipelines.cluster.connect._local_cpus", None)
    monkeypatch.setattr("pipelines.cluster.connect.wait_for_cluster", lambda *args: None)
    ensure_ray(None, log=lambda _: None)
    ensure_ray("10.0.0.1:6379", log=lambda _: None)
    assert [kwargs["runtime_env"] for kwargs in asked] == [ray_runtime_env()] * 2
