"""`ganpipe bench quality`: the benchmark scripts of bench/ that ship with the package."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.benchmarks.quality import BENCHMARKS, run
from pipelines.cli.options import HelpFormatter, at_least


def add_commands(commands: Any) -> None:
    bench = commands.add_parser("bench", help="run a benchmark and print its table", formatter_class=HelpFormatter)
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    quality = benches.add_parser(
        "quality",
        help="modes / high-quality / KL on ring, grid (and stacked digits) over seeds, beside published rows",
        formatter_class=HelpFormatter,
    )
    add_quality_arguments(quality)
    quality.set_defaults(handler=cmd_quality)


def cmd_quality(args: argparse.Namespace) -> int:
    return run(args)


def add_quality_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=at_least(1), default=5, help="seeds per benchmark (from --first-seed)")
    parser.add_argument(
        "--first-seed",
        type=at_least(0),
        default=0,
        help="first seed (to add seeds to a measurement without repeating it)",
    )
    parser.add_argument("--steps", type=at_least(1), default=None, help="override train.steps of every preset")
    parser.add_argument(
        "--bench",
        dest="benches",
        action="append",
        choices=sorted(BENCHMARKS),
        default=None,
        help="benchmark to run (repeatable; default: ring and grid, plus stacked with --stacked)",
    )
    parser.add_argument("--preset", default=None, help="train this preset instead of the benchmark's own")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (repeatable)")  # fmt: skip
    parser.add_argument("--stacked", action="store_true", help="also stacked digits (1000 modes; slow on CPU)")
    parser.add_argument(
        "--stacked-seeds", type=at_least(1), default=None, help="seeds for stacked digits (default: --seeds)"
    )
    parser.add_argument("--ablation", action="store_true", help="run the ablation ladder instead of the preset alone")
    parser.add_argument(
        "--threads", type=at_least(1), default=1, help="torch CPU threads per run (1: small MLPs gain little from more)"
    )
    parser.add_argument(
        "--jobs", type=at_least(1), default=2, help="seeds trained at once, each in its own process (2 fills 2 cores)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke mode: 2 seeds and a few hundred steps")
    parser.add_argument("--cache", default="runs/.cache", help="where the digits classifier is cached")
    parser.add_argument("--jsonl", default=None, help="also append the JSON lines to this file")
    parser.add_argument(
        "--pictures", default=None, metavar="DIR", help="save each run's samples here (truncated beside untruncated)"
    )
