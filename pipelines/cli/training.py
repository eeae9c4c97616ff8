"""`ganpipe train | tune`: training one GAN (on Ray, or locally with gan_core alone) and searching."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from pipelines.cli.commands import TRAINING, add
from pipelines.cli.options import (
    CPUS_DEFAULT,
    ConfigChoice,
    ConfigFile,
    ModelName,
    Overrides,
    Preset,
    integer_option,
    log,
    name_option,
    number_option,
)

Scheduler = Literal["asha", "pbt", "fifo"]
SearchAlgorithm = Literal["random", "optuna"]


def register(app: typer.Typer) -> None:
    add(app, "train", train, help="train one GAN", panel=TRAINING)
    add(app, "tune", tune, help="search hyperparameters on Ray Tune", panel=TRAINING)


def train(
    preset: Preset = None,
    config: ConfigFile = None,
    model: ModelName = None,
    overrides: Overrides = None,
    name: Annotated[
        str | None,
        name_option("--name", "run name; the output folder is OUT_ROOT/NAME (default: the preset or dataset name)"),
    ] = None,
    out_root: Annotated[
        str | None,
        typer.Option("--out-root", help="(--local) folder that holds run folders (default: $GANPIPE_HOME, else runs)"),
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="train in this process with gan_core alone (no Ray)")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="(--local) start over instead of resuming")] = False,
    workers: Annotated[int, integer_option("--workers", 1, "Ray Train workers (data-parallel ranks)")] = 2,
    cpus_per_worker: Annotated[
        float | None,
        number_option("--cpus-per-worker", f"CPUs reserved per worker, its torch threads ({CPUS_DEFAULT})"),
    ] = None,
    gpus_per_worker: Annotated[
        float, number_option("--gpus-per-worker", "GPUs per worker (NCCL when > 0, else gloo)")
    ] = 0.0,
    sync_batchnorm: Annotated[
        bool, typer.Option("--sync-batchnorm", help="synchronise batch-norm statistics across workers")
    ] = False,
    register_as: Annotated[
        str | None, typer.Option("--register", metavar="MODEL", help="register the generator as a version of MODEL")
    ] = None,
    max_failures: Annotated[
        int, integer_option("--max-failures", 0, "worker failures survived (restart from checkpoint)")
    ] = 2,
) -> int:
    resolved = ConfigChoice(preset, config, model, tuple(overrides or ())).resolve()
    name = name or preset or resolved.data.name
    if local:
        return _train_local(resolved, name, out_root, fresh, register_as)
    for flag, given in (("--fresh", fresh), ("--out-root", out_root)):  # they were ignored
        if given:
            raise ValueError(f"{flag} is not allowed without --local; a Ray run lives in storage under its --name")
    from pipelines.train.scaling import Scaling

    scaling = Scaling(workers, cpus_per_worker, gpus_per_worker, sync_batchnorm, max_failures)
    return _train_distributed(resolved, name, scaling, register_as)


def _train_distributed(config, name: str, scaling, register_as: str | None) -> int:
    from gan_core.metrics import versus_real
    from pipelines.train.driver import train_distributed

    result = train_distributed(config, name, scaling, log=log, register_as=register_as)
    log(f"{'resumed and ' if result.resumed else ''}trained {name} to step {result.steps}; MLflow run {result.run_id}")
    log(f"checkpoints: {result.checkpoint_uri}; model: {result.model_uri}")
    for metric, pair in result.metrics.items():
        log(f"  {metric:>20}: {pair['value']:.4f}   ({versus_real(pair)})")
    return 0


def _train_local(config, name: str, out_root: str | None, fresh: bool, register_as: str | None) -> int:
    from gan_core.local_run import train_local
    from pipelines.settings import home_folder

    if register_as:  # it was ignored: nothing registered, exit 0
        raise ValueError("--register is not allowed with --local, which logs nothing to MLflow; drop --local")
    home = home_folder()
    root = Path(out_root) if out_root else home
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out-root {root} is a file; pass a folder (it holds one folder per run)")
    config = _with_local_data(config, root / ".cache")
    # The classifier cache `ganpipe evaluate` and the Ray runs use: trained once per dataset.
    train_local(config, root / name, fresh=fresh, cache_dir=home / "classifiers", log=log)
    return 0


def _with_local_data(config, cache: Path):
    """gan_core alone reads prepared versions from a folder: fetch one kept in s3:// first."""
    if config.data.name != "prepared" or not config.data.root.startswith("s3://"):
        return config
    from gan_core.config import load_config
    from pipelines.storage.datasets import fetch

    return load_config(None, [f"data.root={fetch(config.data.root, cache)}"], base=config.to_dict())


def tune(
    preset: Preset = None,
    config: ConfigFile = None,
    model: ModelName = None,
    overrides: Overrides = None,
    space: Annotated[
        str | None, typer.Option("--space", help="search space: shipped (ganpipe list spaces) or YAML")
    ] = None,
    name: Annotated[str | None, name_option("--name", "search name (results in $GANPIPE_HOME/tune/NAME)")] = None,
    resume: Annotated[str | None, name_option("--resume", "resume the interrupted search NAME")] = None,
    num_samples: Annotated[
        int, integer_option("--num-samples", 1, "trials (each grid point is crossed with these)")
    ] = 8,
    scheduler: Annotated[Scheduler, typer.Option("--scheduler", help="trial scheduler")] = "asha",
    search: Annotated[SearchAlgorithm, typer.Option("--search", help="search algorithm")] = "random",
    max_concurrent: Annotated[int, integer_option("--max-concurrent", 1, "trials running at once")] = 2,
    cpus_per_trial: Annotated[
        float | None, number_option("--cpus-per-trial", "CPUs per trial, split among its workers (default: 1 each)")
    ] = None,
    gpus_per_trial: Annotated[float, number_option("--gpus-per-trial", "GPUs per trial (fractions share a GPU)")] = 0.0,
    workers_per_trial: Annotated[
        int,
        typer.Option(
            "--workers-per-trial",
            help="Ray Train workers per trial (DDP, the trial drives a TorchTrainer); 1 trains in the trial's process",
        ),
    ] = 1,
    milestones: Annotated[int, integer_option("--milestones", 1, "evaluations per trial (ASHA/PBT decide there)")] = 4,
    eval_samples: Annotated[int, integer_option("--eval-samples", 10, "samples per milestone evaluation")] = 1000,
    max_failures: Annotated[
        int,
        integer_option(
            "--max-failures",
            0,
            "restarts of a trial whose process died (a node lost), each from its last checkpoint; "
            "with --workers-per-trial, of its failed workers (by Ray Train), after which the trial ends",
        ),
    ] = 2,
) -> int:
    from pipelines.tune.options import SearchOptions
    from pipelines.tune.search import run_search

    choice = ConfigChoice(preset, config, model, tuple(overrides or ()))
    if resume and (space or choice.given()):
        raise ValueError(f"--resume {resume} continues the search as it was saved; drop the other config options")
    resolved = choice.resolve()
    if not resume and not space:
        raise ValueError("--space is required (a shipped space: `ganpipe list spaces`; or a YAML file)")
    options = SearchOptions(
        space=space or "",
        num_samples=num_samples,
        scheduler=scheduler,
        search=search,
        max_concurrent=max_concurrent,
        cpus_per_trial=cpus_per_trial or float(workers_per_trial),
        gpus_per_trial=gpus_per_trial,
        workers_per_trial=workers_per_trial,
        milestones=milestones,
        eval_samples=eval_samples,
        max_failures=max_failures,
    )
    name = resume or name or f"{preset or resolved.data.name}-search"
    result = run_search(resolved, options, name, log=log, resume=bool(resume))
    print((result.folder / "results.md").read_text(), end="")
    best = result.folder / "best.yaml"
    log(f"best config: {best} (train it with: ganpipe train --config {best})")
    return 0
