"""`ganpipe prepare | pipeline | deploy`: the Prefect side of the command line."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from pipelines.cli.errors import reported_in_one_line
from pipelines.cli.options import CPUS_DEFAULT, HelpFormatter, at_least, non_negative, run_name
from pipelines.cli.shell import runnable
from pipelines.runtime.logs import WithoutTraceback
from pipelines.tracking.server import without_credentials

FORMATTER = HelpFormatter


def add_commands(commands: Any) -> None:
    prepare = commands.add_parser(
        "prepare", help="validate a source and store a versioned dataset", formatter_class=FORMATTER
    )
    prepare.add_argument("source", help="a dataset name: digits, ring, grid, mnist, fashion-mnist")
    prepare.add_argument(
        "--root",
        default="",
        help="IDX folder (path or s3://): needed for mnist; fashion-mnist defaults to Debian's folder",
    )
    prepare.add_argument("--n-train", type=at_least(100), default=100_000, help="samples drawn for the 2-D mixtures")
    prepare.add_argument("--seed", type=at_least(0), default=0, help="seed of the draw and of the train/test split")
    prepare.set_defaults(handler=cmd_prepare)

    pipeline = commands.add_parser(
        "pipeline", help="run gan-pipeline: prepare, search, train, evaluate, register, promote",
        formatter_class=FORMATTER,
    )  # fmt: skip
    pipeline.add_argument(
        "--name", type=run_name, default="digits", help="pipeline name; a re-run with it reuses finished steps"
    )
    pipeline.add_argument("--preset", default="digits-cgan", help="config the search and training start from")
    pipeline.add_argument("--source", default="digits", help="dataset to prepare (see `ganpipe prepare`)")
    pipeline.add_argument(
        "--source-root",
        default="",
        help="IDX folder or s3:// prefix for mnist (needed) or fashion-mnist (default: Debian's folder)",
    )
    pipeline.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="config override (repeatable)")  # fmt: skip
    pipeline.add_argument("--space", default="digits", help="search space: shipped (ganpipe list spaces) or YAML")
    pipeline.add_argument("--search-samples", type=at_least(0), default=4, help="search trials (0 skips the search)")
    pipeline.add_argument("--search-steps", type=at_least(1), default=600, help="training steps per trial")
    pipeline.add_argument("--scheduler", choices=["asha", "pbt", "fifo"], default="asha", help="search scheduler")
    pipeline.add_argument(
        "--train-steps", type=at_least(1), default=None, help="steps of the final training (default: preset)"
    )
    pipeline.add_argument("--workers", type=at_least(1), default=1, help="Ray Train workers for the final training")
    pipeline.add_argument(
        "--cpus-per-worker",
        type=non_negative,
        default=None,
        help=f"CPUs per training worker, its torch threads ({CPUS_DEFAULT})",
    )
    pipeline.add_argument("--gpus-per-worker", type=non_negative, default=0.0, help="GPUs per training worker")
    pipeline.add_argument("--model", default=None, help="registered model name (default: NAME-generator)")
    pipeline.add_argument("--margin", type=float, default=0.0, help="promotion margin on the objective")
    pipeline.add_argument("--bootstrap", type=at_least(0), default=100, help="bootstrap resamples for intervals")
    pipeline.add_argument("--n-train", type=at_least(100), default=100_000, help="samples drawn for the 2-D mixtures")
    pipeline.set_defaults(handler=cmd_pipeline)

    deploy = commands.add_parser("deploy", help="create the scheduled Prefect deployments", formatter_class=FORMATTER)
    deploy.add_argument(
        "--pool", default=None, help="process work pool (default: $GANPIPE_WORK_POOL or ganpipe-process)"
    )
    deploy.add_argument("--nightly-cron", default="0 2 * * *", help="cron (UTC) of nightly-train")
    deploy.add_argument("--weekly-cron", default="0 3 * * 6", help="cron (UTC) of weekly-search")
    deploy.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=JSON",
                        help="gan-pipeline parameter for both deployments, e.g. --param preset='\"ring\"'")  # fmt: skip
    deploy.set_defaults(handler=cmd_deploy)


def cmd_prepare(args: argparse.Namespace) -> int:
    from pipelines.flows.prepare import prepare
    from pipelines.flows.server import start_ephemeral_server_deaf_to_ctrl_c

    _check_source(args.source, args.root, "--root")  # before Prefect starts: one line, not its traceback
    start_ephemeral_server_deaf_to_ctrl_c()

    with prefect_logs_without_tracebacks_of_one_line_errors():
        version = prepare(args.source, args.root, args.n_train, args.seed)
    print(json.dumps({"name": version.name, "version": version.version, "uri": version.uri,
                      "reused": version.reused, "statistics": version.manifest["statistics"]}, indent=2))  # fmt: skip
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from pipelines.flows.pipeline import gan_pipeline
    from pipelines.flows.server import start_ephemeral_server_deaf_to_ctrl_c
    from pipelines.settings import Settings

    _check_source(args.source, args.source_root, "--source-root")
    start_ephemeral_server_deaf_to_ctrl_c()

    with prefect_logs_without_tracebacks_of_one_line_errors():
        summary = gan_pipeline(
            name=args.name, preset=args.preset, source=args.source, source_root=args.source_root,
            overrides=args.overrides, search_space=args.space, search_samples=args.search_samples,
            search_steps=args.search_steps, search_scheduler=args.scheduler, train_steps=args.train_steps,
            workers=args.workers, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
            model_name=args.model, margin=args.margin,
            bootstrap=args.bootstrap, n_train=args.n_train,
        )  # fmt: skip
    _print_where(summary, Settings.from_env())
    return 0


@contextlib.contextmanager
def prefect_logs_without_tracebacks_of_one_line_errors() -> Iterator[None]:
    """Prefect logs a failed flow run's exception with its traceback. For bad input (a label out of
    range, a missing file) that was 80 lines of Prefect's internals before the command's own line
    naming the problem; the message stays in Prefect's log line, and other errors keep theirs."""
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    quiet = WithoutTraceback(reported_in_one_line)  # errors the command ends with one line about
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def _print_where(summary: dict[str, Any], settings) -> None:
    decision = summary["decision"]
    verdict = "is now champion" if decision["promoted"] else f"not promoted ({decision['reason']})"
    if decision["already_champion"]:  # "already the champion (promoted over ...)"
        verdict = decision["reason"].replace("already the champion", "is the champion", 1)
    lines = [
        "",
        f"pipeline {summary['name']}: {summary['model_name']} version {summary['version']} {verdict}",
        *(f"  {k:<12} {v}" for k, v in summary["outputs"].items()),
        f"draw its samples:   {runnable('ganpipe')} sample models:/{summary['model_name']}/{summary['version']} "
        "--out samples.png",
        f"open the MLflow UI:  {runnable('mlflow')} ui --backend-store-uri {settings.tracking_uri}"
        if settings.tracking_uri.startswith("sqlite")
        else f"open the MLflow UI:  {without_credentials(settings.tracking_uri)}",
        f"open the Prefect UI: {runnable('prefect')} server start   (then http://127.0.0.1:4200: this run's flow "
        "and report)",
    ]
    print("\n".join(lines), file=sys.stderr)


def cmd_deploy(args: argparse.Namespace) -> int:
    from pipelines.flows.deploy import DEFAULT_POOL, deploy, schedules

    pool = args.pool or os.environ.get("GANPIPE_WORK_POOL", DEFAULT_POOL)
    parameters = {}
    for item in args.params:
        key, _, value = item.partition("=")
        try:
            parameters[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                f"--param {item!r}: the value after '=' must be JSON (quote strings: key='\"text\"')"
            ) from None
    _check_deployment(parameters, {"--nightly-cron": args.nightly_cron, "--weekly-cron": args.weekly_cron})
    ids = deploy(pool, schedules(args.nightly_cron, args.weekly_cron, parameters))
    for name, deployment_id in ids.items():
        print(f"{name}  {deployment_id}  (pool {pool})")
    print(f"start a worker: prefect worker start --pool {pool} --type process", file=sys.stderr)
    return 0


def _check_deployment(parameters: dict[str, Any], crons: dict[str, str]) -> None:
    """Refuse what every scheduled run would fail on, now: an unknown parameter name, a bad cron."""
    import pydantic
    from prefect.client.schemas.schedules import CronSchedule

    from pipelines.flows.pipeline import gan_pipeline

    known = list(inspect.signature(gan_pipeline.fn).parameters)
    for key in parameters:
        if key not in known:
            raise ValueError(f"--param {key}: gan-pipeline has no such parameter; it has {', '.join(known)}")
    for flag, cron in crons.items():
        try:
            CronSchedule(cron=cron)
        except pydantic.ValidationError:
            raise ValueError(f"{flag} {cron!r} is not a cron expression (minute hour day month weekday)") from None


def _check_source(source: str, root: str, root_flag: str) -> None:
    from pipelines.storage.datasets import NEEDS_ROOT, PREPARABLE

    if source not in PREPARABLE:
        raise ValueError(f"source {source!r} cannot be prepared; allowed: {', '.join(PREPARABLE)}")
    if source in NEEDS_ROOT and not root:
        raise ValueError(f"source {source} is read from IDX files: pass {root_flag} (a folder or s3://bucket/prefix)")
