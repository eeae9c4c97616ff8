"""`ganpipe`: the command line of the pipeline.

Each subcommand is a small function; heavy imports happen inside them so that
`ganpipe --help` and `ganpipe list` answer at once.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gan_core.config import ConfigError, ExperimentConfig, load_config, preset_names, preset_path
from pipelines.cli_args import CPUS_DEFAULT, HelpFormatter, at_least, non_negative, run_name
from pipelines.flows.requested_stops import is_requested_stop
from pipelines.waiting import ServiceUnavailable

FORMATTER = HelpFormatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganpipe",
        description="Train, evaluate and manage GANs. `ganpipe COMMAND --help` shows each command's options.",
        formatter_class=FORMATTER,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train one GAN", formatter_class=FORMATTER)
    _add_config_options(train)
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

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a generator with the full protocol", formatter_class=FORMATTER
    )
    evaluate.add_argument(
        "source", help="an MLflow model URI (runs:/..., models:/...), a checkpoint file or a run folder"
    )
    evaluate.add_argument(
        "--n-samples", type=at_least(10), default=None, help="samples to generate (default: eval.n_samples)"
    )
    evaluate.add_argument(
        "--bootstrap", type=at_least(0), default=100, help="bootstrap resamples for confidence intervals"
    )
    evaluate.add_argument("--json", dest="json_out", default=None, help="write the report to this file as well")
    evaluate.set_defaults(handler=cmd_evaluate)

    search = commands.add_parser("tune", help="search hyperparameters on Ray Tune", formatter_class=FORMATTER)
    _add_config_options(search)
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

    promote = commands.add_parser(
        "promote", help="challenger vs champion; move the alias if better", formatter_class=FORMATTER
    )
    promote.add_argument("model", help="registered model name")
    promote.add_argument("--version", default=None, help="version to judge (default: the `challenger` alias)")
    promote.add_argument("--margin", type=float, default=0.0, help="the objective's 95%% interval must clear this")
    promote.add_argument("--bootstrap", type=at_least(0), default=200, help="paired bootstrap resamples")
    promote.add_argument("--dry-run", action="store_true", help="print the decision, change nothing")
    promote.set_defaults(handler=cmd_promote)

    rollback = commands.add_parser(
        "rollback", help="restore `previous-champion` as `champion`", formatter_class=FORMATTER
    )
    rollback.add_argument("model", help="registered model name")
    rollback.set_defaults(handler=cmd_rollback)

    show = commands.add_parser("config", help="print the resolved config as YAML", formatter_class=FORMATTER)
    _add_config_options(show)
    show.set_defaults(handler=cmd_config)

    listing = commands.add_parser(
        "list", help="list models, losses, datasets, metrics, presets or search spaces", formatter_class=FORMATTER
    )
    listing.add_argument("what", choices=["models", "losses", "datasets", "metrics", "presets", "spaces"])
    listing.set_defaults(handler=cmd_list)

    from pipelines.cli_flows import add_flow_commands

    add_flow_commands(commands)
    from pipelines.cli_sample import add_sample_command

    add_sample_command(commands)
    from pipelines.cli_bench import add_bench_commands

    add_bench_commands(commands)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=None, help=f"a shipped config: {', '.join(preset_names())}")
    parser.add_argument("--config", default=None, help="a YAML config file (applied after the preset)")
    parser.add_argument(
        "--model", dest="model_name", default=None, help="model architecture, shorthand for --set model.name=NAME"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set optim.lr_g=2e-4 (repeatable)",
    )


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    import yaml

    base = yaml.safe_load(preset_path(args.preset).read_text()) if args.preset else None
    model = [f"model.name={args.model_name}"] if getattr(args, "model_name", None) else []
    return load_config(args.config, [*model, *args.overrides], base=base)


def _with_local_data(config: ExperimentConfig, cache: Path) -> ExperimentConfig:
    """gan_core alone reads prepared versions from a folder: fetch one kept in s3:// first."""
    if config.data.name != "prepared" or not config.data.root.startswith("s3://"):
        return config
    from pipelines.datasets import fetch

    return load_config(None, [f"data.root={fetch(config.data.root, cache)}"], base=config.to_dict())


def cmd_train(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    name = args.name or args.preset or config.data.name
    if args.local:
        from gan_core.local_run import train_local

        if args.register:  # it was ignored: nothing registered, exit 0
            raise ValueError("--register is not allowed with --local, which logs nothing to MLflow; drop --local")

        from pipelines.settings import home_folder

        home = home_folder()
        out_root = Path(args.out_root) if args.out_root else home
        if out_root.exists() and not out_root.is_dir():
            raise ValueError(f"--out-root {out_root} is a file; pass a folder (it holds one folder per run)")
        config = _with_local_data(config, out_root / ".cache")
        # The classifier cache `ganpipe evaluate` and the Ray runs use: trained once per dataset.
        train_local(config, out_root / name, fresh=args.fresh, cache_dir=home / "classifiers", log=_log)
        return 0
    from gan_core.metrics import versus_real
    from pipelines.ray_train import Scaling
    from pipelines.train import train_distributed

    for flag, given in (("--fresh", args.fresh), ("--out-root", args.out_root)):  # they were ignored
        if given:
            raise ValueError(f"{flag} is not allowed without --local; a Ray run lives in storage under its --name")

    scaling = Scaling(args.workers, args.cpus_per_worker, args.gpus_per_worker, args.sync_batchnorm, args.max_failures)
    result = train_distributed(config, name, scaling, log=_log, register_as=args.register)
    _log(f"{'resumed and ' if result.resumed else ''}trained {name} to step {result.steps}; MLflow run {result.run_id}")
    _log(f"checkpoints: {result.checkpoint_uri}; model: {result.model_uri}")
    for metric, pair in result.metrics.items():
        _log(f"  {metric:>20}: {pair['value']:.4f}   ({versus_real(pair)})")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from pipelines.tune import SearchOptions, run_search

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
    result = run_search(config, options, name, log=_log, resume=bool(args.resume))
    print((result.folder / "results.md").read_text(), end="")
    best = result.folder / "best.yaml"
    _log(f"best config: {best} (train it with: ganpipe train --config {best})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipelines.evaluation import evaluate_source
    from pipelines.settings import Settings

    if args.json_out and not Path(args.json_out).parent.is_dir():  # known before minutes of evaluation
        raise FileNotFoundError(f"--json {args.json_out}: folder {Path(args.json_out).parent} does not exist")
    summary = evaluate_source(args.source, Settings.from_env(), args.n_samples, args.bootstrap, log=_log)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)
    if "mlflow_run_id" in summary:
        _log(f"evaluation logged to MLflow run {summary['mlflow_run_id']}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pipelines import tracking
    from pipelines.registry import promote, record_decision_run
    from pipelines.settings import Settings

    settings = Settings.from_env()
    client = tracking.client_for(settings, _log)
    decision = promote(client, settings, args.model, args.version, args.margin, args.dry_run, args.bootstrap, _log)
    if not args.dry_run and not decision.recorded:
        record_decision_run(client, tracking.experiment_id(client, settings), decision)
    print(json.dumps(asdict(decision), indent=2))
    verb = "would move" if args.dry_run else "moved"
    outcome = f"{verb} champion to version {decision.challenger}" if decision.promoted else "champion unchanged"
    _log(f"{args.model}: {outcome} ({decision.reason})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from pipelines import tracking
    from pipelines.registry import rollback
    from pipelines.settings import Settings

    client = tracking.client_for(Settings.from_env(), _log)
    restored, demoted = rollback(client, args.model)
    _log(f"{args.model}: champion is version {restored} again (version {demoted} is now previous-champion)")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(resolve_config(args).to_dict(), sort_keys=False), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what in ("presets", "spaces"):
        from pipelines.search_space import shipped_spaces

        for name in preset_names() if args.what == "presets" else shipped_spaces():
            print(name)
        return 0
    from gan_core.data import DATASETS
    from gan_core.losses import LOSSES
    from gan_core.metrics import METRICS
    from gan_core.models import MODELS

    registry = {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "metrics": METRICS}[args.what]
    width = max(len(n) for n in registry.names())
    for name, description in registry.describe().items():
        print(f"{name:<{width}}  {description}")
    return 0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


BAD_INPUT = (ConfigError, FileNotFoundError, ValueError, LookupError)  # `main` prints these as one line


def _one_line_for(error: Exception) -> tuple[str, int] | None:
    """The line and exit status for errors of modules that take seconds to import (pyarrow,
    torch): a command that never imported one cannot have raised its error."""
    storage = sys.modules.get("pipelines.storage")
    if storage is not None and isinstance(error, storage.StorageError):
        return f"storage error: {error}", 2
    if is_requested_stop(error):  # training or a search stopped by Ctrl-C or SIGTERM
        return str(error), error.exit_code
    lock = sys.modules.get("gan_core.outputs.run_lock")
    if lock is not None and isinstance(error, lock.RunBusy):  # the run is training elsewhere
        return str(error), error.exit_code
    mlflow_errors = sys.modules.get("mlflow.exceptions")
    known = mlflow_errors is not None and isinstance(error, mlflow_errors.MlflowException)
    if known and error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):  # a URI typed wrong
        return f"error: MLflow: {str(error.message).strip().splitlines()[0]}", 2
    return None


def reported_in_one_line(error: BaseException) -> bool:
    """Whether `main` ends with one line about this error (no traceback): bad input, a service
    that did not answer, a divergence, and the errors `_one_line_for` knows."""
    plain = (*BAD_INPUT, ServiceUnavailable, FloatingPointError)
    return isinstance(error, plain) or (isinstance(error, Exception) and _one_line_for(error) is not None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # MLflow draws a progress bar for every artifact download (the model it logs, the training
    # GIF's frames): dozens of lines of "Downloading artifacts" in the command's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return args.handler(args)
    except BAD_INPUT as error:
        print(f"ganpipe {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ServiceUnavailable as error:  # MLflow, the Ray cluster or S3 did not answer
        print(f"ganpipe {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # NonFiniteLossError
        print(f"ganpipe {args.command}: training diverged: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while training stops, or one before it starts
        print(f"ganpipe {args.command}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as error:
        if error.code != signal.SIGTERM:
            raise
        # Ray's SIGTERM handler in the driver, outside training (evaluating, publishing)
        print(f"ganpipe {args.command}: stopped (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as error:
        known = _one_line_for(error)
        if known is None:
            raise
        print(f"ganpipe {args.command}: {known[0]}", file=sys.stderr)
        return known[1]


def console() -> None:
    """The `ganpipe` command: `main`, then an exit that skips the interpreter's last garbage collections.

    The command holds over 300k objects once torch, Ray and MLflow are imported, and Python's
    finalization walks all of them in several full collections: measured, 1.8-1.9 s between the
    last atexit handler and the end of the process, 2.5 s after a `ganpipe train`. Frozen, they
    are left to the OS (0.3 s). Nothing is lost: atexit handlers (Ray's shutdown, MLflow's and
    logging's flushes) still run, and objects made after the freeze are collected as before."""
    try:
        code = main()
    finally:
        gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
