"""`ganpipe tune`: hyperparameter search on Ray Tune, every trial evaluated with the protocol.

Each trial trains gan_core's loop (trials.py; with `workers_per_trial` > 1, on a Ray Train
TorchTrainer, multiworker.py) and, at each milestone (the loop's checkpoint cadence),
evaluates the EMA generator on held-out data and reports (milestones.py):

- `objective` (higher is better): -Fréchet distance for images; for the 2-D mixtures
  (modes captured / modes) x (high-quality fraction) x exp(-reverse KL), which is 1 only
  when every mode is found, every sample is within 3 sigma and modes are equally weighted
  (real data scores about 0.99);
- the protocol's metrics, and `coverage` (modes or classes found). A trial whose coverage
  falls below `eval.collapse_threshold` after its first milestone is stopped, and the
  reason is kept in its results.

ASHA stops weak trials early; PBT copies the checkpoint of a strong trial into a weak one
and perturbs its optimiser and loss settings. Trial checkpoints live in storage, so an
interrupted search resumes (`--resume NAME`).
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from gan_core.config import ExperimentConfig, from_dict
from pipelines.cluster.connect import ensure_ray
from pipelines.cluster.room import check_room, cluster_capacity
from pipelines.runtime.signals import noticing_signals, sigterm_as_ctrl_c
from pipelines.settings import Settings
from pipelines.storage.lease import holding
from pipelines.storage.location import Storage
from pipelines.tracking import runs
from pipelines.train.options import HookFactory
from pipelines.tune.multiworker import run_trial_on_workers, trial_resources
from pipelines.tune.options import SearchInterrupted, SearchOptions, SearchResult, TrialSpec
from pipelines.tune.results import summarise
from pipelines.tune.space import apply_overrides, load_space, pbt_mutations, to_tune
from pipelines.tune.trials import run_trial

SPEC_FILE = "ganpipe-search.json"


def run_search(
    base: ExperimentConfig,
    options: SearchOptions,
    name: str,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
    resume: bool = False,
    hooks: Sequence[HookFactory] = (),
) -> SearchResult:
    """Search `options.space` around `base` as search `name` (continuing it with `resume`);
    `hooks` add hooks to every trial (see train.trainer.run_trainer)."""
    settings = settings or Settings.from_env()
    storage = Storage.from_uri(settings.storage_uri)
    storage.check(log)
    with holding(storage.child("tune", name), f"search {name}", log):  # not run twice at once
        return _search(base, options, name, settings, storage, log, resume, tuple(hooks))


def _search(
    base: ExperimentConfig,
    options: SearchOptions,
    name: str,
    settings: Settings,
    storage: Storage,
    log: Callable[[str], None],
    resume: bool,
    hooks: tuple[HookFactory, ...],
) -> SearchResult:
    from ray import tune

    from pipelines.tune.progress import TrialLines  # subclasses Ray Tune's Callback: imported with Ray

    filesystem, root = storage.child("tune").pyarrow()
    folder = settings.home / "tune" / name
    spec_path = folder / SPEC_FILE
    if resume:
        if not spec_path.is_file():
            raise FileNotFoundError(f"no search named {name!r} to resume ({spec_path} is missing)")
        saved = json.loads(spec_path.read_text())
        base, options = from_dict(saved["base"]), SearchOptions.from_dict(saved["options"])
    requested = base  # best.yaml starts from it, without the search's checkpoint and log cadence
    steps = base.train.steps
    milestone = max(1, steps // options.milestones)
    base = apply_overrides(
        base, {"train.checkpoint_every": milestone, "train.log_every": min(base.train.log_every, milestone)}
    )
    dimensions = load_space(options.space, base)

    client = runs.client_for(settings, log)  # waits for the MLflow server if it does not answer
    ensure_ray(settings.ray_address, log, settings.ray_wait_s)  # before an MLflow run is opened for nothing
    per_trial, max_concurrent = room_for_trials(options, settings, log)
    tags = {
        "ganpipe.kind": "search",
        "ganpipe.space": options.space,
        "config.hash": base.hash(),
        "code.version": runs.code_version(),
    }
    parent_id, _ = runs.find_or_create_run(client, settings, f"search-{name}", base.flat(), tags)
    spec = TrialSpec(
        name=name,
        base=base,
        eval_samples=options.eval_samples,
        stop_on_collapse=options.scheduler != "pbt",
        cache_dir=settings.classifier_cache,
        storage_uri=settings.storage_uri,
        tracking_uri=settings.tracking_uri,
        experiment_id=runs.experiment_id(client, settings),
        parent_run_id=parent_id,
        tracking_wait_s=settings.tracking_wait_s,
        hooks=hooks,
    )
    folder.mkdir(parents=True, exist_ok=True)  # once the search is known to be sound
    spec_path.write_text(json.dumps({"base": requested.to_dict(), "options": options.to_dict()}, indent=2))
    options = replace(options, max_concurrent=max_concurrent)  # as asked in the spec: a resume may have more room

    if options.workers_per_trial > 1:  # the trial drives a TorchTrainer
        trainable = tune.with_parameters(run_trial_on_workers, spec=spec, options=options)
    else:  # the trial trains in its own process
        trainable = tune.with_parameters(run_trial, spec=spec)
    trainable = tune.with_resources(trainable, {key.lower(): amount for key, amount in per_trial.items()})
    experiment_path = f"{root}/{name}"
    if resume and tune.Tuner.can_restore(experiment_path, storage_filesystem=filesystem):
        log(f"resuming search {name} from {storage.uri}/tune/{name}")
        tuner = tune.Tuner.restore(experiment_path, trainable, resume_errored=True, storage_filesystem=filesystem)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=to_tune(dimensions),
            tune_config=_tune_config(options, dimensions),
            run_config=tune.RunConfig(
                name=name,
                storage_path=root,
                storage_filesystem=filesystem,
                verbose=0,  # Tune's box tables; one line per trial instead (progress.py)
                callbacks=[TrialLines(options.milestones)],
                # Ended by Tune at the last milestone, so no scheduler acts on it: PBT once cloned a
                # finished trial there, and the clone, with nothing left to train, kept the other
                # trial's result as its own (seen in CI: one trial listed twice, exploits lost).
                stop={"training_iteration": options.milestones},
                failure_config=tune.FailureConfig(max_failures=options.max_failures),
            ),
        )
    # Tune's newer console output prints its configuration box, results path and a TensorBoard
    # hint at any verbosity; the older one prints nothing at verbose=0. Read as fit() starts.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    how = f"{options.scheduler} scheduler, {options.search} search"
    log(f"search {name}: {options.num_samples} sample(s), {how}, {steps} steps per trial")
    try:
        with noticing_signals() as signals, sigterm_as_ctrl_c():
            grid = tuner.fit()
        runs.end_children(client, parent_id, "KILLED" if signals.stop_signal else "FINISHED", log)
        if signals.stop_signal:
            raise_interrupted(grid, name, expected_trials(options.num_samples, dimensions), signals.stop_signal)
        return summarise(grid, requested, name, folder, client, parent_id, dimensions, log, filesystem)
    # SystemExit: a SIGTERM outside fit() meets Ray's handler in the driver, which calls sys.exit
    except (SearchInterrupted, KeyboardInterrupt, SystemExit):
        runs.mark_ended(client, parent_id, "KILLED", log)
        raise
    except Exception:  # the parent run must not stay RUNNING for ever
        runs.mark_ended(client, parent_id, "FAILED", log)
        raise


def room_for_trials(options: SearchOptions, settings: Settings, log: Callable[[str], None]):
    """Each trial's resources and how many may run at once, checked before the search's run opens:
    Tune would wait for ever for a trial that no node of a local cluster can hold."""
    capacity = cluster_capacity(may_grow=settings.ray_address is not None)
    if options.workers_per_trial > 1:
        return trial_resources(options, capacity, log)
    each = {"CPU": options.cpus_per_trial, "GPU": options.gpus_per_trial}
    check_room(1, each, "trial", "Ask for a smaller --cpus-per-trial or --gpus-per-trial", capacity, log)
    return each, options.max_concurrent


def expected_trials(num_samples: int, dimensions) -> int:
    """Tune runs `num_samples` trials for every combination of the grid dimensions."""
    return num_samples * math.prod(len(d.args) for d in dimensions if d.kind == "grid")


def raise_interrupted(grid, name: str, expected: int, signum: signal.Signals) -> None:
    """Tune answered Ctrl-C (or SIGTERM, passed on as one) by saving the experiment and returning
    from fit() as if it had ended; the best of trials cut short must not pass for the search's result."""
    reported = sum(1 for result in grid if (result.metrics or {}).get("training_iteration", 0) > 0)
    raise SearchInterrupted(
        f"search {name} interrupted by {'Ctrl-C' if signum == signal.SIGINT else signum.name} ({len(grid)} of "
        f"{expected} trial(s) started, {reported} past their first milestone); its state is saved: "
        f"`ganpipe tune --resume {name}`, or running the pipeline again, continues it",
        signum,
    )


def _tune_config(options: SearchOptions, dimensions) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
    from ray.tune.search import BasicVariantGenerator

    if options.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="training_iteration", max_t=options.milestones, grace_period=1, reduction_factor=2
        )
    elif options.scheduler == "pbt":
        scheduler = PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=1,
            hyperparam_mutations=pbt_mutations(dimensions),
            quantile_fraction=0.5,
            # Synchronous: every trial reaches the milestone before any exploits, so the strong
            # trial's checkpoint always exists. Asynchronous PBT skipped exploits whenever the
            # weak trial reported first (seen in CI with two trials).
            synch=True,
        )
    else:
        scheduler = FIFOScheduler()
    if options.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(seed=options.seed)
    else:  # Tune's own random search, seeded as Optuna is: it drew other values each time it ran
        search_alg = BasicVariantGenerator(random_state=options.seed)
    return tune.TuneConfig(
        metric="objective",
        mode="max",
        scheduler=scheduler,
        search_alg=search_alg,
        num_samples=options.num_samples,
        max_concurrent_trials=options.max_concurrent,
    )
