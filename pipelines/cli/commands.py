"""How a command joins `ganpipe`: registered under its name and help panel, and ending on a known
error with one line ("ganpipe COMMAND: error: ...") and its exit status (errors.py)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer

from pipelines.cli.errors import one_line_for

# The help panels of `ganpipe --help`, in the order they are shown: the pipeline first, then
# the steps a person runs alone.
PIPELINE = "Pipeline"
TRAINING = "Training"
MODELS = "Models"
CATALOG = "Catalog"
BENCHMARKS = "Benchmarks"


def add(app: typer.Typer, name: str, function: Callable[..., int], *, help: str, panel: str | None = None,
        short_help: str | None = None, path: str | None = None) -> None:  # fmt: skip
    """Register `function` as the command `name` of `app` (`path`: its words after `ganpipe`)."""
    app.command(name, help=help, short_help=short_help, rich_help_panel=panel)(
        in_one_line(function, f"ganpipe {path or name}")
    )


def in_one_line(function: Callable[..., int], where: str) -> Callable[..., int]:
    """`function`, ending on an error `one_line_for` knows with that line and its exit status.

    Caught here, inside the command, not around Typer: Typer turns a KeyboardInterrupt into a
    silent exit 130 before `main` could name it."""

    @functools.wraps(function)  # Typer reads the options from the wrapped signature
    def reported(*args, **kwargs) -> int:
        try:
            return function(*args, **kwargs)
        except (Exception, KeyboardInterrupt, SystemExit) as error:
            known = one_line_for(error)
            if known is None:
                raise
            print(f"{where}: {known[0]}", file=sys.stderr)
            raise typer.Exit(known[1]) from None

    return reported
