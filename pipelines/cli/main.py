"""`ganpipe`: the command line of the pipeline.

Each command group lives in its own module and registers its commands on the Typer app (app.py);
heavy imports happen inside the commands, so that `ganpipe --help` and `ganpipe list` answer at once.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

import typer

from pipelines.cli.app import app
from pipelines.runtime.logs import skip_ray_internal_lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ganpipe ARGV` (default: sys.argv[1:]) and return its exit status."""
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
    command = typer.main.get_command(app)
    try:
        # Not standalone: the command's status comes back instead of a sys.exit, and a usage
        # error comes here to be said in one line (Typer's own is a box of several).
        status = command.main(None if argv is None else list(argv), prog_name="ganpipe", standalone_mode=False)
    except typer.TyperException as error:  # Click's usage errors: a bad option value, a missing command
        return _usage_error(error)
    return status if isinstance(status, int) else 0


def _usage_error(error: typer.TyperException) -> int:
    """`ganpipe COMMAND: error: Invalid value for '--workers': 0 is not allowed: an integer >= 1`."""
    context = getattr(error, "ctx", None)
    where = context.command_path if context is not None else "ganpipe"
    message = error.format_message()
    if type(error).__name__ == "NoArgsIsHelpError":  # bare `ganpipe`: Typer has shown the help
        if message:  # ... unless Rich is off, when the help is the message
            print(message, file=sys.stderr)
    else:  # Click lays some out on several lines ("Choose from:" and a line per choice)
        print(f"{where}: error: {' '.join(message.split())}", file=sys.stderr)
    return error.exit_code


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
