"""`ganpipe tune`: hyperparameter search on Ray Tune, every trial evaluated with the protocol.

Each trial trains gan_core's loop in its own process and, at each milestone (the loop's
checkpoint cadence), evaluates the EMA generator on held-out data and reports:

- `objective` (higher is better): -Fréchet distance for images; for the 2-D mixtures
  (modes captured / modes) x (high-quality fraction) x exp(-reverse KL), which is 1 only
  when every mode is found, every sample is within 3 sigma and modes are equally weighted
  (real data scores about 0.99);
- the protocol's metrics, and `coverage` (modes or classes found). A trial whose coverage
  falls below `eval.collapse_threshold` after its first milestone is stopped, and the
  reason is kept in its results.

A trial whose process dies (a node lost, a spot instance taken back, out of memory) starts
again from its last checkpoint, up to `max_failures` times. A trial that diverges is not
started again, which would only diverge again: it ends with its reason (`diverged: ...`) and
no objective.

With `workers_per_trial` > 1 a trial instead drives a Ray Train TorchTrainer whose workers run
`ganpipe train`'s worker (DDP) and report the same milestones (pipelines/tune_workers.py).

ASHA stops weak trials early; PBT copies the checkpoint of a strong trial into a weak one
and perturbs its optimiser and loss settings. Trial checkpoints live in storage, so an
interrupted search resumes (`--resume NAME`).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from gan_core.config import ExperimentConfig, from_dict
from gan_core.metrics import Evaluator, coverage_from_metrics, flatten_report, objective_of
from gan_core.training import Hook, NonFiniteLossError, TrainState, fit, load_checkpoint, save_checkpoint
from pipelines.ctrl_c import noticing_signals, sigterm_as_ctrl_c
from pipelines.ray_train import CHECKPOINT_FILE, CrashOnce, FailsEveryAttempt, StopTraining
from pipelines.search_space import apply_overrides, load_space, pbt_mutations, to_tune
from pipelines.settings import TRACKING_WAIT_S, Settings

SPEC_FILE = "ganpipe-search.json"


@dataclass(frozen=True)
class SearchOptions:
    space: str  # a shipped space name or a YAML path
    num_samples: int = 8
    scheduler: Literal["asha", "pbt", "fifo"] = "asha"
    search: Literal["random", "optuna"] = "random"
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    workers_per_trial: int = 1  # > 1: each trial drives a TorchTrainer; CPUs and GPUs split among its workers
    milestones: int = 4  # evaluations per trial; ASHA and PBT decide at these
    eval_samples: int = 1000
    seed: int = 0
    max_failures: int = 2  # restarts of a trial whose process (or, multi-worker, a worker) died, from its checkpoint

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.max_concurrent < 1 or self.milestones < 1:
            raise ValueError("--num-samples, --max-concurrent and --milestones must be >= 1")
        if self.max_failures < 0:
            raise ValueError(f"--max-failures {self.max_failures} is not allowed: an integer >= 0")
        if self.workers_per_trial < 1:
            raise ValueError("--workers-per-trial must be >= 1")
        if self.workers_per_trial > 1 and self.scheduler == "pbt":
            # PBT exploits Tune checkpoints; a multi-worker trial's checkpoints stay in its Train run.
            raise ValueError("--scheduler pbt trains in-process: use --workers-per-trial 1 with it")
        if self.scheduler == "pbt" and self.search == "optuna":
            raise ValueError("--scheduler pbt chooses its own configurations; use --search random with it")


class StopTrial(StopTraining):
    """Raised inside a trial to end it early (mode collapse)."""


@dataclass
class SearchResult:
    name: str
    folder: Path
    best_config: ExperimentConfig
    best_objective: float
    trials: list[dict[str, Any]]
    parent_run_id: str | None
    best_params: dict[str, Any] = field(default_factory=dict)  # the searched keys' best values
    best_stop_reason: str = ""  # set when every trial was stopped (collapse, error), the best one's reason


# --------------------------------------------------------------------------- trial side


MILESTONE_WAIT_S = 30.0  # the longest a milestone waits for its metrics to reach MLflow


class Milestones(Hook):
    """At each checkpoint: evaluate, report to Tune with the checkpoint, log to MLflow."""

    train_keys: tuple[str, ...] = ("d_loss", "g_loss", "d_real", "d_fake")  # training metrics reported too

    def __init__(
        self,
        evaluator: Evaluator,
        threshold: float,
        mlflow_child: tuple[Any, str] | None,
        stop_on_collapse: bool = True,
    ) -> None:
        self.evaluator, self.threshold = evaluator, threshold
        self.stop_on_collapse = stop_on_collapse
        # The trial's MLflow child run, fed in the background: an outage does not stop the trial.
        self.tracking = None
        if mlflow_child:
            from pipelines.tracking_queue import TrackingQueue

            client, run_id = mlflow_child
            self.tracking = TrackingQueue(client, run_id, str(client.tracking_uri))
        self.milestone = 0
        self.total_milestones = 1
        self.best_coverage = 0.0
        self._train_metrics: dict[str, float] = {}

    def on_start(self, state: TrainState) -> None:
        # PBT restores a trial from another trial's checkpoint: count those exploits.
        from ray import tune

        me = tune.get_context().get_trial_id()
        origin = state.extra.get("trial_id")
        state.extra["exploits"] = int(state.extra.get("exploits", 0)) + int(origin is not None and origin != me)
        state.extra["trial_id"] = me

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        self._train_metrics = {k: v for k, v in metrics.items() if k in self.train_keys}

    def on_checkpoint(self, step: int, checkpoint: dict[str, Any], state: TrainState) -> None:
        from ray import tune

        metrics = self.evaluate(step, state)
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(checkpoint, Path(folder) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        if metrics["stop_reason"] and self.stop_on_collapse:
            raise StopTrial(metrics["stop_reason"])

    def evaluate(self, step: int, state: TrainState) -> dict[str, Any]:
        """The milestone's metrics (objective, protocol metrics, stop reason), logged to MLflow."""
        self.milestone += 1
        report = flatten_report(self.evaluator.evaluate(state.sampler))
        dataset = self.evaluator.dataset
        metrics = {k: v for k, v in report.items() if not k.endswith(("_real", "_matched"))}
        metrics.update(self._train_metrics)
        metrics["objective"] = objective_of(metrics, dataset)
        metrics["coverage"] = coverage_from_metrics(metrics, dataset)
        metrics["step"] = step
        metrics["exploits"] = state.extra.get("exploits", 0)
        metrics["stop_reason"] = self.collapse_reason(metrics["coverage"])
        if self.tracking is not None:
            self.tracking.log_metrics(step, {k: v for k, v in metrics.items() if isinstance(v, int | float)})
            # Tune may end the trial at the report that follows (ASHA): let this milestone arrive
            # first, unless the server is down.
            self.tracking.flush(MILESTONE_WAIT_S)
        return metrics

    def close(self, wait_s: float) -> None:
        """The end of the trial: wait up to `wait_s` for its metrics to reach MLflow."""
        if self.tracking is not None:
            self.tracking.close(wait_s)

    def collapse_reason(self, coverage: float) -> str:
        """Collapse: coverage fell below the threshold after reaching it, or never reached it by
        half-way (a GAN that has not found its modes by then rarely does)."""
        reached = self.best_coverage >= self.threshold
        self.best_coverage = max(self.best_coverage, coverage)
        if coverage >= self.threshold:
            return ""
        if reached:
            return (
                f"mode collapse: coverage fell to {coverage:.2f} (< {self.threshold:.2f}) from {self.best_coverage:.2f}"
            )
        if self.milestone >= max(2, self.total_milestones // 2):
            return (
                f"mode collapse: coverage {coverage:.2f} still below {self.threshold:.2f} at milestone {self.milestone}"
            )
        return ""


def run_trial(params: dict[str, Any], spec: dict[str, Any]) -> None:
    """The Tune trainable: one GAN, trained in this process, evaluated at milestones."""
    from ray import tune

    from pipelines.datasets import load_for

    config = apply_overrides(from_dict(spec["base"]), params)
    dataset = load_for(config)
    evaluator = trial_evaluator(config, dataset, spec)
    child = mlflow_child(spec, params, config)
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = load_checkpoint(Path(folder) / CHECKPOINT_FILE)
    # Under PBT a collapsing trial is better exploited (it copies a healthy one) than stopped.
    hook = Milestones(evaluator, config.eval.collapse_threshold, child, stop_on_collapse=spec["stop_on_collapse"])
    hook.milestone = (resume or {}).get("step", 0) // config.train.checkpoint_every
    hook.total_milestones = max(1, config.train.steps // config.train.checkpoint_every)
    hooks: list[Hook] = [hook, *crash_hooks(spec)]
    try:
        with contextlib.suppress(StopTrial):  # reported with its reason; returning ends the trial
            fit(config, dataset, hooks, resume_from=resume)
    except NonFiniteLossError as error:
        report_divergence(error)
    hook.close(spec.get("tracking_wait_s", TRACKING_WAIT_S))
    if child:
        child[0].set_terminated(child[1])


def report_divergence(error: NonFiniteLossError) -> None:
    """End a diverged trial with its reason. Raising would fail the trial, and Tune would start it
    again from its last checkpoint (`max_failures`) only to diverge again. Its objective is NaN,
    which ASHA's cut-offs and the search's summary leave out."""
    from ray import tune

    reason = f"diverged: {str(error).split(';')[0]}"  # the step and the metrics, not the advice
    tune.report({"objective": float("nan"), "stop_reason": reason, "step": getattr(error, "step", 0)})


def crash_hooks(spec: dict[str, Any], in_train_run: bool = False) -> list[Hook]:
    """Test aid (spec["crash"]): the trial's process dies (kind "exit": a node lost) or its
    generator turns NaN (kind "nan": divergence), once per marker file; or it raises on every
    attempt (kind "error"). `in_train_run`: the trial's workers are a Ray Train run's."""
    return [
        FailsEveryAttempt(crash["at_step"], crash["marker"])
        if crash["kind"] == "error"
        else CrashOnce(0, crash["at_step"], crash["marker"], crash["kind"], in_train_run)
        for crash in spec.get("crash", [])
    ]


def trial_evaluator(config: ExperimentConfig, dataset, spec: dict[str, Any]) -> Evaluator:
    eval_config = type(config.eval)(**{**asdict(config.eval), "n_samples": spec["eval_samples"]})
    return Evaluator(dataset, eval_config, cache_dir=spec["cache_dir"])


def mlflow_child(spec: dict[str, Any], params: dict[str, Any], config: ExperimentConfig):
    if not spec.get("parent_run_id"):
        return None
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient
    from ray import tune

    client = MlflowClient(spec["tracking_uri"])
    trial_id, parent = tune.get_context().get_trial_id(), spec["parent_run_id"]
    found = client.search_runs(
        [spec["experiment_id"]],
        filter_string=f"tags.`ganpipe.trial_id` = '{trial_id}' and tags.`mlflow.parentRunId` = '{parent}'",
        max_results=1,
    )
    if found:
        return client, found[0].info.run_id
    tags = {"mlflow.parentRunId": spec["parent_run_id"], "ganpipe.trial_id": trial_id, "ganpipe.search": spec["name"]}
    run = client.create_run(spec["experiment_id"], run_name=trial_id, tags=tags)
    searched = {f"searched.{k}": v for k, v in params.items()}
    client.log_batch(
        run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in {**config.flat(), **searched}.items()]
    )
    return client, run.info.run_id


# --------------------------------------------------------------------------- driver side


def run_search(
    base: ExperimentConfig,
    options: SearchOptions,
    name: str,
    settings: Settings | None = None,
    log: Callable[[str], None] = print,
    resume: bool = False,
    crash: tuple[dict[str, Any], ...] = (),  # test aid: crash_hooks' arguments, in every trial
) -> SearchResult:
    from pipelines.run_lease import holding_run
    from pipelines.storage import Storage

    settings = settings or Settings.from_env()
    storage = Storage.from_uri(settings.storage_uri)
    storage.check(log)
    with holding_run(storage.child("tune", name), f"search {name}", log):  # not run twice at once
        return _search(base, options, name, settings, storage, log, resume, crash)


def _search(
    base: ExperimentConfig,
    options: SearchOptions,
    name: str,
    settings: Settings,
    storage: Any,
    log: Callable[[str], None],
    resume: bool,
    crash: tuple[dict[str, Any], ...] = (),
) -> SearchResult:
    from ray import tune

    from pipelines import tracking
    from pipelines.cluster_room import check_room
    from pipelines.ray_cluster import ensure_ray

    filesystem, root = storage.child("tune").pyarrow()
    folder = settings.home / "tune" / name
    spec_path = folder / SPEC_FILE
    if resume:
        if not spec_path.is_file():
            raise FileNotFoundError(f"no search named {name!r} to resume ({spec_path} is missing)")
        saved = json.loads(spec_path.read_text())
        base, options = from_dict(saved["base"]), SearchOptions(**saved["options"])
    requested = base  # best.yaml starts from it, without the search's checkpoint and log cadence
    steps = base.train.steps
    milestone = max(1, steps // options.milestones)
    base = apply_overrides(
        base, {"train.checkpoint_every": milestone, "train.log_every": min(base.train.log_every, milestone)}
    )
    dimensions = load_space(options.space, base)

    client = tracking.client_for(settings, log)  # waits for the MLflow server if it does not answer
    ensure_ray(settings.ray_address, log, settings.ray_wait_s)  # before an MLflow run is opened for nothing
    # Room for a trial, checked before the search's run opens: Tune would wait for ever for one
    # that no node of a fixed cluster can hold.
    if options.workers_per_trial > 1:
        from pipelines.tune_workers import trial_resources

        per_trial, max_concurrent = trial_resources(options, log)
    else:
        each = {"CPU": options.cpus_per_trial, "GPU": options.gpus_per_trial}
        check_room(1, each, "trial", "Ask for a smaller --cpus-per-trial or --gpus-per-trial", log)
        per_trial, max_concurrent = each, options.max_concurrent
    experiment_id = tracking.experiment_id(client, settings)
    tags = {
        "ganpipe.kind": "search",
        "ganpipe.space": options.space,
        "config.hash": base.hash(),
        "code.version": tracking.code_version(),
    }
    parent_id, _ = tracking.find_or_create_run(client, settings, f"search-{name}", base.flat(), tags)
    spec = {
        "name": name,
        "base": base.to_dict(),
        "eval_samples": options.eval_samples,
        "stop_on_collapse": options.scheduler != "pbt",
        "cache_dir": str(settings.home / "classifiers"),
        "parent_run_id": parent_id,
        "tracking_uri": settings.tracking_uri,
        "experiment_id": experiment_id,
        "storage_uri": settings.storage_uri,
        "tracking_wait_s": settings.tracking_wait_s,
        "crash": list(crash),
    }
    folder.mkdir(parents=True, exist_ok=True)  # once the search is known to be sound
    spec_path.write_text(json.dumps({"base": requested.to_dict(), "options": asdict(options)}, indent=2))
    options = replace(options, max_concurrent=max_concurrent)  # as asked in the spec: a resume may have more room

    if options.workers_per_trial > 1:  # the trial drives a TorchTrainer
        from pipelines.tune_workers import run_trial_on_workers

        trainable = tune.with_parameters(run_trial_on_workers, spec=spec, options=options)
    else:  # the trial trains in its own process
        trainable = tune.with_parameters(run_trial, spec=spec)
    trainable = tune.with_resources(trainable, {name.lower(): amount for name, amount in per_trial.items()})
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
                verbose=1,
                # Ended by Tune at the last milestone, so no scheduler acts on it: PBT once cloned a
                # finished trial there, and the clone, with nothing left to train, kept the other
                # trial's result as its own (seen in CI: one trial listed twice, exploits lost).
                stop={"training_iteration": options.milestones},
                failure_config=tune.FailureConfig(max_failures=options.max_failures),
            ),
        )
    how = f"{options.scheduler} scheduler, {options.search} search"
    log(f"search {name}: {options.num_samples} sample(s), {how}, {steps} steps per trial")
    try:
        with noticing_signals() as signals, sigterm_as_ctrl_c():
            grid = tuner.fit()
        tracking.end_children(client, parent_id, "KILLED" if signals.stop_signal else "FINISHED", log)
        if signals.stop_signal:
            raise_interrupted(grid, name, expected_trials(options.num_samples, dimensions), signals.stop_signal)
        return _summarise(grid, requested, name, folder, client, parent_id, dimensions, log, filesystem)
    # SystemExit: a SIGTERM outside fit() meets Ray's handler in the driver, which calls sys.exit
    except (SearchInterrupted, KeyboardInterrupt, SystemExit):
        tracking.mark_ended(client, parent_id, "KILLED", log)
        raise
    except Exception:  # the parent run must not stay RUNNING for ever
        tracking.mark_ended(client, parent_id, "FAILED", log)
        raise


class SearchInterrupted(Exception):
    """Ctrl-C or SIGTERM ended the search before every trial had finished; Tune saved its state."""

    transient = False  # asked for: a flow's retry would undo it (faults.is_transient reads this)

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # as a shell reports a command the signal ended


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
    search_alg = None
    if options.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(seed=options.seed)
    return tune.TuneConfig(
        metric="objective",
        mode="max",
        scheduler=scheduler,
        search_alg=search_alg,
        num_samples=options.num_samples,
        max_concurrent_trials=options.max_concurrent,
    )


def _summarise(grid, base, name, folder: Path, client, parent_id, dimensions, log, filesystem) -> SearchResult:
    from pipelines import tracking

    keys = [d.key for d in dimensions]
    trials = []
    for result in grid:
        metrics = result.metrics or {}
        config = result.config or {}
        row = {"trial": metrics.get("trial_id", ""), **{k: config.get(k) for k in keys}}
        row.update(
            objective=metrics.get("objective"),
            milestones=metrics.get("training_iteration", 0),
            exploits=metrics.get("exploits", 0),
            step=metrics.get("step", 0),
            stop_reason=metrics.get("stop_reason")
            or ("" if result.error is None else f"error: {type(result.error).__name__}"),
            # A multi-worker trial's checkpoints stay in its Train run; Tune gets their path.
            checkpoint=result.checkpoint.path if result.checkpoint else metrics.get("checkpoint_path", ""),
        )
        trials.append(row)
    best = _best_trial(_scored_trials(trials, name), name, log)
    best_config = apply_overrides(base, {k: best[k] for k in keys})
    (folder / "best.yaml").write_text(yaml.safe_dump(best_config.to_dict(), sort_keys=False))
    _write_tables(trials, folder)
    best_picture = _best_samples(grid, best, best_config, folder, filesystem)

    tracking.log_metrics(client, parent_id, {"best_objective": best["objective"], "trials": len(trials)}, 0)
    for artifact in ("best.yaml", "results.csv", "results.md", best_picture):
        if artifact and (folder / artifact).is_file():
            client.log_artifact(parent_id, str(folder / artifact))
    client.set_tag(parent_id, "ganpipe.best_trial", str(best["trial"]))
    if best["stop_reason"]:
        client.set_tag(parent_id, "ganpipe.best_trial_stop_reason", best["stop_reason"])
    client.set_terminated(parent_id)
    log(f"best trial {best['trial']}: objective {best['objective']:.4f}; best config in {folder / 'best.yaml'}")
    best_params = {k: best[k] for k in keys}
    return SearchResult(
        name, folder, best_config, best["objective"], trials, parent_id, best_params, best["stop_reason"]
    )


def _has_objective(trial: dict[str, Any]) -> bool:
    return trial["objective"] is not None and not math.isnan(trial["objective"])


def _scored_trials(trials: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The trials with an objective; none is an error that says what became of each."""
    scored = [t for t in trials if _has_objective(t)]
    if scored:
        return scored
    fates = "; ".join(f"trial {t['trial']}: {(t['stop_reason'] or 'no milestone reached')[:90]}" for t in trials)
    if trials and all(t["stop_reason"].startswith("diverged") for t in trials):
        raise NonFiniteLossError(f"search {name}: every trial diverged ({fates})")
    raise RuntimeError(f"search {name}: no trial reported a result ({fates or 'no trials'})")


def _best_trial(finished: list[dict[str, Any]], name: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The highest objective among the trials that were not stopped (a collapsed trial can score
    well at the milestone that stopped it); of all of them, saying so, when every trial was."""
    healthy = [t for t in finished if not t["stop_reason"]]
    best = max(healthy or finished, key=lambda t: t["objective"])
    if not healthy:
        log(
            f"warning: every trial of search {name} was stopped; the best config is that of trial {best['trial']}, "
            f"stopped with: {best['stop_reason']}"
        )
    return best


def _write_tables(trials: list[dict[str, Any]], folder: Path) -> None:
    import csv

    columns = list(trials[0])
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(trials)
    shown = [c for c in columns if c != "checkpoint"]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in sorted(trials, key=lambda t: -t["objective"] if _has_objective(t) else math.inf):  # unscored last
        lines.append("| " + " | ".join(fmt(row[c]) for c in shown) + " |")
    (folder / "results.md").write_text("\n".join(lines) + "\n")


def _best_samples(grid, best: dict[str, Any], config: ExperimentConfig, folder: Path, filesystem) -> str:
    from ray import tune

    from gan_core.outputs import sample_picture
    from gan_core.training import generator_from_checkpoint
    from pipelines.datasets import load_for

    result = next((r for r in grid if r.checkpoint and r.checkpoint.path == best["checkpoint"]), None)
    if result is not None:
        checkpoint = result.checkpoint
    elif best["checkpoint"]:  # a multi-worker trial's, in its Train run
        checkpoint = tune.Checkpoint(best["checkpoint"], filesystem)
    else:
        return ""
    with checkpoint.as_directory() as checkpoint_dir:
        generator = generator_from_checkpoint(load_checkpoint(Path(checkpoint_dir) / CHECKPOINT_FILE))
    dataset = load_for(config)
    title = f"best trial {best['trial']}"
    sample_picture(generator, dataset, config.eval.seed, title).save(folder / "best_samples.png")
    return "best_samples.png"


__all__ = ["SearchOptions", "SearchResult", "run_search"]
