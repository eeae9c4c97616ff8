"""The `ganpipe` Typer app: its commands, grouped in help panels, and its own options."""

from __future__ import annotations

from typing import Annotated

import typer

import gan_core
from pipelines.cli import bench, catalog, flows, models, training

DESCRIPTION = "Train, evaluate and manage GANs. `ganpipe COMMAND --help` shows each command's options."


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="ganpipe",
        help=DESCRIPTION,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},  # argparse's -h stays
        # A bug's traceback stays Python's own, as with argparse, not Rich's with locals.
        pretty_exceptions_enable=False,
    )
    app.callback()(options)
    for group in (flows, training, models, catalog, bench):  # the order of `ganpipe --help`'s panels
        group.register(app)
    return app


def _print_version(asked: bool) -> None:
    if asked:
        print(f"ganpipe {gan_core.__version__}")
        raise typer.Exit()


def options(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="print the version and exit")
    ] = False,
) -> None:
    """Options of `ganpipe` itself, before the command."""


app = build_app()
