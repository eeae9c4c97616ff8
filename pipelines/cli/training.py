"""`ganpipe train | tune`: training one GAN (on Ray, or locally with gan_core alone) and searching."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipelines.cli.options import (
    CPUS_DEFAULT,
    HelpFormatter,
    add_config_options,
    at_least,
    log,
    non_negative,
    resolve_config,
    run_name,
)


def add_commands(commands: Any) -> None:
    train = commands.add_parser("train", help="train one GAN", formatter_class=HelpFormatter)
    add_config_options(train)
    train.add_argument(
        "--name",
        type=run_name,
        default=None,
        help="run name; the output folder is OUT_ROOT/NAME (default: the preset or dataset name)",
    )
    train.add_argument(
        "--out-root", default=None, help="(--local) folder that holds run folders (default: $GANPIPE_HOME, else runs)"
    )
    train.add_argument("--local", action="store_true", help="train in this process with gan_core alone (no Ray)")
    train.add_argument("--fresh", action="store_true", help="(--local) start over instead of resuming")
    train.add_argument("--workers", type=at_least(1), default=2, help="Ray Train workers (data-parallel ranks)")
    train.add_argument(
        "--cpus-per-worker",
        type=non_negative,
        default=None,
        help=f"CPUs reserved per worker, its torch threads ({CPUS_DEFAULT})",
    )
    train.add_argument(
        "--gpus-per-worker", type=non_negative, default=0.0, help="GPUs per worker (NCCL when > 0, else gloo)"
    )
    train.add_argument("--sync-batchnorm", action="store_true", help="synchronise batch-norm statistics across workers")
    train.add_argument("--register", default=None, metavar="MODEL", help="register the generator as a version of MODEL")
    train.add_argument(
        "--max-failures", type=at_least(0), default=2, help="worker failures survived (restart from checkpoint)"
    )
    train.set_defaults(handler=cmd_train)

    search = commands.add_parser("tune", help="search hyperparameters on Ray Tune", formatter_class=HelpFormatter)
    add_config_options(search)
    search.add_argument("--space", default=None, help="search space: shipped (ganpipe list spaces) or YAML")
    search.add_argument("--name", type=run_name, default=None, help="search name (results in $GANPIPE_HOME/tune/NAME)")
    search.add_argument(
        "--resume", type=run_name, default=None, metavar="NAME", help="resume the interrupted search NAME"
    )
    search.add_argument(
        "--num-samples", type=at_least(1), default=8, help="trials (each grid point is crossed with these)"
    )
    search.add_argument("--scheduler", choices=["asha", "pbt", "fifo"], default="asha", help="trial scheduler")
    search.add_argument("--search", choices=["random", "optuna"], default="random", help="search algorithm")
    search.add_argument("--max-concurrent", type=at_least(1), default=2, help="trials running at once")
    search.add_argument(
        "--cpus-per-trial",
        type=non_negative,
        default=None,
        help="CPUs per trial, split among its workers (None: 1 each)",
    )
    search.add_argument(
        "--gpus-per-trial", type=non_negative, default=0.0, help="GPUs per trial (fractions share a GPU)"
    )
    search.add_argument(
        "--workers-per-trial",
        type=int,
        default=1,
        help="Ray Train workers per trial (DDP, the trial drives a TorchTrainer); 1 trains in the trial's process",
    )
    search.add_argument(
        "--milestones", type=at_least(1), default=4, help="evaluations per trial (ASHA/PBT decide there)"
    )
    search.add_argument("--eval-samples", type=at_least(10), default=1000, help="samples per milestone evaluation")
    search.add_argument(
        "--max-failures",
        type=at_least(0),
        default=2,
        help="restarts of a trial whose process died (a node lost), each from its last checkpoint; "
        "with --workers-per-trial, of its failed workers (by Ray Train), after which the trial ends",
    )
    search.set_defaults(handler=cmd_tune)


def cmd_train(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    name = args.name or args.preset or config.data.name
    if args.local:
        return _train_local(args, config, name)
    from gan_core.metrics import versus_real
    from pipelines.train.driver import train_distributed
    from pipelines.train.scaling import Scaling

    for flag, given in (("--fresh", args.fresh), ("--out-root", args.out_root)):  # they were ignored
        if given:
            raise ValueError(f"{flag} is not allowed without --local; a Ray run lives in storage under its --name")

    scaling = Scaling(args.workers, args.cpus_per_worker, args.gpus_per_worker, args.sync_batchnorm, args.max_failures)
    result = train_distributed(config, name, scaling, log=log, register_as=args.register)
    log(f"{'resumed and ' if result.resumed else ''}trained {name} to step {result.steps}; MLflow run {result.run_id}")
    log(f"checkpoints: {result.checkpoint_uri}; model: {result.model_uri}")
    for metric, pair in result.metrics.items():
        log(f"  {metric:>20}: {pair['value']:.4f}   ({versus_real(pair)})")
    return 0


def _train_local(args: argparse.Namespace, config, name: str) -> int:
    from gan_core.local_run import train_local
    from pipelines.settings import home_folder

    if args.register:  # it was ignored: nothing registered, exit 0
        raise ValueError("--register is not allowed with --local, which logs nothing to MLflow; drop --local")
    home = home_folder()
    out_root = Path(args.out_root) if args.out_root else home
    if out_root.exists() and not out_root.is_dir():
        raise ValueError(f"--out-root {out_root} is a file; pass a folder (it holds one folder per run)")
    config = _with_local_data(config, out_root / ".cache")
    # The classifier cache `ganpipe evaluate` and the Ray runs use: trained once per dataset.
    train_local(config, out_root / name, fresh=args.fresh, cache_dir=home / "classifiers", log=log)
    return 0


def _with_local_data(config, cache: Path):
    """gan_core alone reads prepared versions from a folder: fetch one kept in s3:// first."""
    if config.data.name != "prepared" or not config.data.root.startswith("s3://"):
        return config
    from gan_core.config import load_config
    from pipelines.storage.datasets import fetch

    return load_config(None, [f"data.root={fetch(config.data.root, cache)}"], base=config.to_dict())


def cmd_tune(args: argparse.Namespace) -> int:
    from pipelines.tune.options import SearchOptions
    from pipelines.tune.search import run_search

    if args.resume and (args.space or args.preset or args.config or args.overrides or args.model_name):
        raise ValueError(f"--resume {args.resume} continues the search as it was saved; drop the other config options")
    config = resolve_config(args)
    if not args.resume and not args.space:
        raise ValueError("--space is required (a shipped space: `ganpipe list spaces`; or a YAML file)")
    options = SearchOptions(
        space=args.space or "",
        num_samples=args.num_samples,
        scheduler=args.scheduler,
        search=args.search,
        max_concurrent=args.max_concurrent,
        cpus_per_trial=args.cpus_per_trial or float(args.workers_per_trial),
        gpus_per_trial=args.gpus_per_trial,
        workers_per_trial=args.workers_per_trial,
        milestones=args.milestones,
        eval_samples=args.eval_samples,
        max_failures=args.max_failures,
    )
    name = args.resume or args.name or f"{args.preset or config.data.name}-search"
    result = run_search(config, options, name, log=log, resume=bool(args.resume))
    print((result.folder / "results.md").read_text(), end="")
    best = result.folder / "best.yaml"
    log(f"best config: {best} (train it with: ganpipe train --config {best})")
    return 0
