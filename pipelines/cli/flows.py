"""`ganpipe pipeline | prepare | deploy`: the Prefect side of the command line."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import typer

from pipelines.cli.commands import PIPELINE, add
from pipelines.cli.errors import reported_in_one_line
from pipelines.cli.options import CPUS_DEFAULT, integer_option, name_option, number_option
from pipelines.cli.shell import runnable
from pipelines.runtime.logs import WithoutTraceback
from pipelines.tracking.server import without_credentials

Scheduler = Literal["asha", "pbt", "fifo"]
NTrain = Annotated[int, integer_option("--n-train", 100, "samples drawn for the 2-D mixtures")]


def register(app: typer.Typer) -> None:
    add(app, "pipeline", pipeline, panel=PIPELINE,
        help="run gan-pipeline: prepare, search, train, evaluate, register, promote")  # fmt: skip
    add(app, "prepare", prepare, help="validate a source and store a versioned dataset", panel=PIPELINE)
    add(app, "deploy", deploy, help="create the scheduled Prefect deployments", panel=PIPELINE)


def prepare(
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="a dataset name: digits, ring, grid, mnist, fashion-mnist")
    ],
    root: Annotated[
        str,
        typer.Option(
            "--root", help="IDX folder (path or s3://): needed for mnist; fashion-mnist defaults to Debian's folder"
        ),
    ] = "",
    n_train: NTrain = 100_000,
    seed: Annotated[int, integer_option("--seed", 0, "seed of the draw and of the train/test split")] = 0,
) -> int:
    from pipelines.flows.prepare import prepare as prepare_flow
    from pipelines.flows.server import start_ephemeral_server_deaf_to_ctrl_c

    _check_source(source, root, "--root")  # before Prefect starts: one line, not its traceback
    start_ephemeral_server_deaf_to_ctrl_c()

    with prefect_logs_without_tracebacks_of_one_line_errors():
        version = prepare_flow(source, root, n_train, seed)
    print(json.dumps({"name": version.name, "version": version.version, "uri": version.uri,
                      "reused": version.reused, "statistics": version.manifest["statistics"]}, indent=2))  # fmt: skip
    return 0


def pipeline(
    name: Annotated[str, name_option("--name", "pipeline name; a re-run with it reuses finished steps")] = "digits",
    preset: Annotated[str, typer.Option("--preset", help="config the search and training start from")] = "digits-cgan",
    source: Annotated[str, typer.Option("--source", help="dataset to prepare (see `ganpipe prepare`)")] = "digits",
    source_root: Annotated[
        str,
        typer.Option(
            "--source-root",
            help="IDX folder or s3:// prefix for mnist (needed) or fashion-mnist (default: Debian's folder)",
        ),
    ] = "",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="config override (repeatable)")
    ] = None,
    space: Annotated[
        str, typer.Option("--space", help="search space: shipped (ganpipe list spaces) or YAML")
    ] = "digits",
    search_samples: Annotated[int, integer_option("--search-samples", 0, "search trials (0 skips the search)")] = 4,
    search_steps: Annotated[int, integer_option("--search-steps", 1, "training steps per trial")] = 600,
    scheduler: Annotated[Scheduler, typer.Option("--scheduler", help="search scheduler")] = "asha",
    train_steps: Annotated[
        int | None, integer_option("--train-steps", 1, "steps of the final training (default: preset)")
    ] = None,
    workers: Annotated[int, integer_option("--workers", 1, "Ray Train workers for the final training")] = 1,
    cpus_per_worker: Annotated[
        float | None,
        number_option("--cpus-per-worker", f"CPUs per training worker, its torch threads ({CPUS_DEFAULT})"),
    ] = None,
    gpus_per_worker: Annotated[float, number_option("--gpus-per-worker", "GPUs per training worker")] = 0.0,
    model: Annotated[
        str | None, typer.Option("--model", help="registered model name (default: NAME-generator)")
    ] = None,
    margin: Annotated[float, typer.Option("--margin", help="promotion margin on the objective")] = 0.0,
    bootstrap: Annotated[int, integer_option("--bootstrap", 0, "bootstrap resamples for intervals")] = 100,
    n_train: NTrain = 100_000,
) -> int:
    from pipelines.flows.pipeline import gan_pipeline
    from pipelines.flows.server import start_ephemeral_server_deaf_to_ctrl_c
    from pipelines.settings import Settings

    _check_source(source, source_root, "--source-root")
    start_ephemeral_server_deaf_to_ctrl_c()

    with prefect_logs_without_tracebacks_of_one_line_errors():
        summary = gan_pipeline(
            name=name, preset=preset, source=source, source_root=source_root,
            overrides=list(overrides or ()), search_space=space, search_samples=search_samples,
            search_steps=search_steps, search_scheduler=scheduler, train_steps=train_steps,
            workers=workers, cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
            model_name=model, margin=margin, bootstrap=bootstrap, n_train=n_train,
        )  # fmt: skip
    _print_where(summary, Settings.from_env())
    return 0


def deploy(
    pool: Annotated[
        str | None, typer.Option("--pool", help="process work pool (default: $GANPIPE_WORK_POOL or ganpipe-process)")
    ] = None,
    nightly_cron: Annotated[str, typer.Option("--nightly-cron", help="cron (UTC) of nightly-train")] = "0 2 * * *",
    weekly_cron: Annotated[str, typer.Option("--weekly-cron", help="cron (UTC) of weekly-search")] = "0 3 * * 6",
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="KEY=JSON",
            help="gan-pipeline parameter for both deployments, e.g. --param preset='\"ring\"'",
        ),
    ] = None,
) -> int:
    from pipelines.flows.deploy import DEFAULT_POOL, schedules
    from pipelines.flows.deploy import deploy as create

    pool = pool or os.environ.get("GANPIPE_WORK_POOL", DEFAULT_POOL)
    parameters = _parameters(params or [])
    _check_deployment(parameters, {"--nightly-cron": nightly_cron, "--weekly-cron": weekly_cron})
    ids = create(pool, schedules(nightly_cron, weekly_cron, parameters))
    for deployment, deployment_id in ids.items():
        print(f"{deployment}  {deployment_id}  (pool {pool})")
    print(f"start a worker: prefect worker start --pool {pool} --type process", file=sys.stderr)
    return 0


def _parameters(items: list[str]) -> dict[str, Any]:
    """--param KEY=JSON, each read as JSON."""
    parameters = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            parameters[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                f"--param {item!r}: the value after '=' must be JSON (quote strings: key='\"text\"')"
            ) from None
    return parameters


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
