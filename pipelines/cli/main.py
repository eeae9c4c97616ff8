"""`ganpipe`: the command line of the pipeline.

Each command group lives in its own module and registers its subcommands here; heavy imports
happen inside the commands, so that `ganpipe --help` and `ganpipe list` answer at once.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

from pipelines.cli import bench, catalog, flows, models, training
from pipelines.cli.errors import one_line_for
from pipelines.cli.options import HelpFormatter
from pipelines.runtime.logs import skip_ray_internal_lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganpipe",
        description="Train, evaluate and manage GANs. `ganpipe COMMAND --help` shows each command's options.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (training, models, catalog, flows, bench):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # MLflow draws a progress bar for every artifact download (the model it logs, the training
    # GIF's frames): dozens of lines of "Downloading artifacts" in the command's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # ... and a "View run NAME at: URL" pair of lines for every run it ends (a search's every trial).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # Prefect's ephemeral server sends usage telemetry from a heartbeat that writes to its SQLite
    # database beside the flow's own writes: now and then a 130-line "database is locked"
    # traceback in a command whose result was right. Read when Prefect is imported; a user's
    # own setting stays.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    skip_ray_internal_lines()  # before anything imports Ray
    try:
        return args.handler(args)
    except (Exception, KeyboardInterrupt, SystemExit) as error:
        known = one_line_for(error)
        if known is None:
            raise
        print(f"ganpipe {args.command}: {known[0]}", file=sys.stderr)
        return known[1]


def console() -> None:
    """The `ganpipe` command: `main`, then an exit that skips the interpreter's last garbage collections.

    The command holds over 300k objects once torch, Ray and MLflow are imported, and Python's
    finalization walks all of them in several full collections (1.8-2.5 s after a `ganpipe
    train`). Frozen, they are left to the OS. Nothing is lost: atexit handlers (Ray's shutdown,
    MLflow's and logging's flushes) still run, and objects made after the freeze are collected."""
    try:
        code = main()
    finally:
        gc.freeze()
    sys.exit(code)
