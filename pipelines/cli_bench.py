"""`ganpipe bench quality`: the benchmark scripts of bench/ that ship with the package."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.cli_args import HelpFormatter

FORMATTER = HelpFormatter


def add_bench_commands(commands: Any) -> None:
    bench = commands.add_parser("bench", help="run a benchmark and print its table", formatter_class=FORMATTER)
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    quality = benches.add_parser(
        "quality",
        help="modes / high-quality / KL on ring, grid (and stacked digits) over seeds, beside published rows",
        formatter_class=FORMATTER,
    )
    from pipelines.quality import add_arguments

    add_arguments(quality)
    quality.set_defaults(handler=cmd_quality)


def cmd_quality(args: argparse.Namespace) -> int:
    from pipelines.quality import run

    return run(args)
