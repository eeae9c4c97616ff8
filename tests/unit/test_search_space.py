"""Search spaces as users write them, and what Tune's schedulers receive."""

from pathlib import Path

import pytest
import yaml

from gan_core.config import ConfigError, load_config, preset_path
from pipelines.search_space import load_space, pbt_mutations


def _space(tmp_path: Path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


def test_an_empty_space_is_refused(tmp_path: Path):
    """It ran a 'search' of one trial of the base config and called it the best."""
    with pytest.raises(ConfigError, match="must map dotted keys to distributions, e.g. optim.lr_g"):
        load_space(_space(tmp_path, ""), load_config(preset_path("ring")))


def test_numbers_yaml_reads_as_strings_are_numbers(tmp_path: Path):
    """YAML 1.1 reads 1e-4 as a string: the bounds were compared as text ('1e-4' < '1e-3' is false)."""
    [dimension] = load_space(_space(tmp_path, "optim.lr_g: {loguniform: [1e-4, 1e-3]}"), load_config())
    assert dimension.args == (1e-4, 1e-3)
    with pytest.raises(ConfigError, match=r"needs \[low, high\] with low < high, got \[0.001, 0.0001\]"):
        load_space(_space(tmp_path, "optim.lr_g: {loguniform: [1e-3, 1e-4]}"), load_config())


def test_pbt_gets_choices_as_lists_and_only_what_may_change_mid_training(tmp_path: Path):
    """Ray's PBT multiplies any mutation that is not a plain list by 0.8 or 1.2: the digits space's
    choice of learning-rate schedule (strings) crashed every PBT search."""
    space = {
        "optim.lr_schedule": {"choice": ["constant", "linear-decay"]},
        "optim.beta1": {"choice": [0.0, 0.5]},
        "optim.lr_g": {"loguniform": [1.0e-4, 1.0e-3]},
        "loss.name": {"choice": ["nonsaturating", "hinge"]},
        "loss.r1_weight": {"grid": [0.0, 0.1]},
        "model.g_width": {"choice": [128, 256]},
    }
    dimensions = load_space(_space(tmp_path, yaml.safe_dump(space)), load_config(preset_path("ring")))
    mutations = pbt_mutations(dimensions)
    assert sorted(mutations) == ["optim.beta1", "optim.lr_g", "optim.lr_schedule"]
    assert mutations["optim.lr_schedule"] == ["constant", "linear-decay"]
    assert mutations["optim.beta1"] == [0.0, 0.5]
    assert not isinstance(mutations["optim.lr_g"], list)  # a distribution PBT samples from


def test_a_trial_whose_workers_take_every_cpu_is_refused_not_left_waiting():
    """Its driver's 0.01 CPU was not counted: 2 workers of 1 CPU 'fitted' a 2-CPU cluster, and Ray
    waited for ever for the CPU the driver held."""
    from pipelines.cluster_room import Capacity
    from pipelines.tune import SearchOptions
    from pipelines.tune_workers import trial_resources

    two_cpus = Capacity([{"CPU": 2.0}], autoscaling_max=None)
    options = SearchOptions(space="ring", workers_per_trial=2, cpus_per_trial=2.0)
    with pytest.raises(ValueError, match=r"a trial of 2 workers needs \{'CPU': 2.01\}"):
        trial_resources(options, log=lambda line: None, capacity=two_cpus)
    options = SearchOptions(space="ring", workers_per_trial=2, cpus_per_trial=1.8)
    assert trial_resources(options, print, capacity=two_cpus)[1] == 1


def test_gpu_trials_on_a_cluster_whose_gpu_nodes_scale_from_zero_are_started():
    """infra/k8s/raycluster.yaml's GPU group has minReplicas 0: counting only the nodes present,
    every GPU search there was refused before it began."""
    from pipelines.cluster_room import Capacity
    from pipelines.tune import SearchOptions
    from pipelines.tune_workers import trial_resources

    head_only = Capacity([{"CPU": 0.0}], autoscaling_max={"CPU": 32.0, "GPU": 4.0})
    options = SearchOptions(space="ring", workers_per_trial=2, cpus_per_trial=8.0, gpus_per_trial=2.0, max_concurrent=4)
    lines: list[str] = []
    assert trial_resources(options, lines.append, capacity=head_only)[1] == 2  # 4 GPUs hold 2 trials of 2
    assert "waiting for its autoscaler to add nodes" in lines[0]
    with pytest.raises(ValueError, match=r"cannot hold 2 worker\(s\) of \{CPU: 4, GPU: 1\} each"):
        trial_resources(options, lines.append, capacity=Capacity([{"CPU": 0.0}], autoscaling_max=None))


def test_a_pipeline_reuses_a_search_only_for_the_same_base_and_options():
    """Its search was recorded by pipeline name and data version alone: a re-run with another preset
    applied the old preset's winning values to the new one."""
    from pipelines.flows.pipeline import _search_base, _search_key, _search_options

    ring = _search_base(load_config(preset_path("ring")), 600)
    options = _search_options("ring", 4, "asha")
    assert _search_key(ring, options) == _search_key(dict(ring), dict(options))
    assert _search_key(_search_base(load_config(preset_path("ring-hq")), 600), options) != _search_key(ring, options)
    assert _search_key(_search_base(load_config(preset_path("ring")), 300), options) != _search_key(ring, options)
    assert _search_key(ring, _search_options("ring", 4, "pbt")) != _search_key(ring, options)


def test_the_best_trial_is_one_that_was_not_stopped_and_a_search_of_stopped_trials_says_so():
    """A trial stopped for collapse can still have the highest objective at the milestone that
    stopped it: the search named it best, and the pipeline trained it without a word."""
    from pipelines.tune import _best_trial

    collapsed = {"trial": "a", "objective": -0.4, "stop_reason": "mode collapse: coverage 0.10 still below 0.50"}
    healthy = {"trial": "b", "objective": -0.9, "stop_reason": ""}
    said: list[str] = []
    assert _best_trial([collapsed, healthy], "s", said.append)["trial"] == "b" and not said
    assert _best_trial([collapsed], "s", said.append)["trial"] == "a"
    assert said == [
        "warning: every trial of search s was stopped; the best config is that of trial a, "
        "stopped with: mode collapse: coverage 0.10 still below 0.50"
    ]


def test_a_search_without_an_objective_says_what_became_of_each_trial():
    from gan_core.training import NonFiniteLossError
    from pipelines.tune import _scored_trials

    diverged = {
        "trial": "a",
        "objective": float("nan"),
        "stop_reason": "diverged: non-finite training metrics by step 600",
    }
    died = {"trial": "b", "objective": None, "stop_reason": "error: ActorDiedError"}
    fine = {"trial": "c", "objective": 0.4, "stop_reason": ""}
    assert _scored_trials([diverged, died, fine], "s") == [fine]
    with pytest.raises(NonFiniteLossError, match=r"search s: every trial diverged \(trial a: diverged: .* step 600\)"):
        _scored_trials([diverged, dict(diverged, trial="d")], "s")
    with pytest.raises(
        RuntimeError, match=r"no trial reported a result \(trial a: .*; trial b: error: ActorDiedError\)"
    ):
        _scored_trials([diverged, died], "s")


def test_a_multi_worker_trial_that_failed_is_named_by_its_lowest_ranks_error_or_its_controllers():
    from ray.exceptions import RayTaskError
    from ray.train import ControllerError, WorkerGroupError

    from pipelines.tune_workers import failure_reason

    wrapped = RayTaskError("train_fn", "Traceback ...", RuntimeError("CUDA out of memory\nTried to allocate 2 GiB"))
    workers = WorkerGroupError("rank snippets", {1: ValueError("rank 1 followed"), 0: wrapped})
    assert failure_reason(workers, 3) == "failed after 3 attempts: RuntimeError: CUDA out of memory"
    assert failure_reason(workers, 1) == "failed after 1 attempt: RuntimeError: CUDA out of memory"
    controller = ControllerError(TimeoutError("no placement group\n..."))
    assert failure_reason(controller, 3) == "failed: TimeoutError: no placement group"
