"""`python -m pipelines.cli`: the `ganpipe` command."""

from pipelines.cli.main import console

console()
