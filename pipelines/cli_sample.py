"""`ganpipe sample`: a generator's samples as a picture, from a run folder or the registry."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.cli_args import HelpFormatter, at_least


def add_sample_command(commands: Any) -> None:
    sample = commands.add_parser(
        "sample",
        help="draw a generator's samples into a picture (and arrays)",
        description="Draw samples into a picture: a grid of images (one column per class for a conditional "
        "generator), a scatter of points over the true modes, or held-out inputs beside their translations. "
        "The same --count, --seed and --label give the samples the served model returns.",
        formatter_class=HelpFormatter,
    )
    sample.add_argument(
        "source",
        help="an MLflow model URI (models:/NAME@champion, runs:/...), a checkpoint file or a run folder",
    )
    sample.add_argument("--out", type=Path, default=Path("samples.png"), help="the picture (.png, .jpg or .webp)")
    sample.add_argument(
        "--count",
        type=at_least(1),
        default=None,
        help="samples to draw (default: 64 images, rounded up to whole rows of classes; 2500 points; 48 translations)",
    )
    sample.add_argument("--seed", type=at_least(0), default=0, help="the latent seed (or which held-out inputs)")
    sample.add_argument(
        "--label", type=at_least(-1), default=-1, help="a conditional generator's class; -1 cycles through them"
    )
    sample.add_argument("--arrays", type=Path, default=None, help="also write the samples to this .npz file")
    sample.set_defaults(handler=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from pipelines.sampling import SampleRequest, sample_source
    from pipelines.settings import Settings

    request = SampleRequest(args.source, args.out, args.count, args.seed, args.label, args.arrays)
    summary = sample_source(request, Settings.from_env(), log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(summary))
    print(f"{summary['source']}: {summary['samples']} -> {', '.join(summary['written'])}", file=sys.stderr)
    return 0
