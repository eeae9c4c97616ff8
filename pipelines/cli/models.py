"""`ganpipe evaluate | sample | promote | rollback`: judging, looking at and promoting generators."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipelines.cli.options import HelpFormatter, at_least, log


def add_commands(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="evaluate a generator with the full protocol", formatter_class=HelpFormatter
    )
    evaluate.add_argument(
        "source", help="an MLflow model URI (runs:/..., models:/...), a checkpoint file or a run folder"
    )
    evaluate.add_argument(
        "--n-samples", type=at_least(10), default=None, help="samples to generate (default: eval.n_samples)"
    )
    evaluate.add_argument(
        "--bootstrap", type=at_least(0), default=100, help="bootstrap resamples for confidence intervals"
    )
    evaluate.add_argument("--json", dest="json_out", default=None, help="write the report to this file as well")
    evaluate.set_defaults(handler=cmd_evaluate)

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

    promote = commands.add_parser(
        "promote", help="challenger vs champion; move the alias if better", formatter_class=HelpFormatter
    )
    promote.add_argument("model", help="registered model name")
    promote.add_argument("--version", default=None, help="version to judge (default: the `challenger` alias)")
    promote.add_argument("--margin", type=float, default=0.0, help="the objective's 95%% interval must clear this")
    promote.add_argument("--bootstrap", type=at_least(0), default=200, help="paired bootstrap resamples")
    promote.add_argument("--dry-run", action="store_true", help="print the decision, change nothing")
    promote.set_defaults(handler=cmd_promote)

    rollback = commands.add_parser(
        "rollback", help="restore `previous-champion` as `champion`", formatter_class=HelpFormatter
    )
    rollback.add_argument("model", help="registered model name")
    rollback.set_defaults(handler=cmd_rollback)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipelines.evaluate.report import evaluate_source
    from pipelines.settings import Settings

    if args.json_out and not Path(args.json_out).parent.is_dir():  # known before minutes of evaluation
        raise FileNotFoundError(f"--json {args.json_out}: folder {Path(args.json_out).parent} does not exist")
    summary = evaluate_source(args.source, Settings.from_env(), args.n_samples, args.bootstrap, log=log)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)
    if "mlflow_run_id" in summary:
        log(f"evaluation logged to MLflow run {summary['mlflow_run_id']}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from pipelines.evaluate.pictures import SampleRequest, sample_source
    from pipelines.settings import Settings

    request = SampleRequest(args.source, args.out, args.count, args.seed, args.label, args.arrays)
    summary = sample_source(request, Settings.from_env(), log=log)
    print(json.dumps(summary))
    log(f"{summary['source']}: {summary['samples']} -> {', '.join(summary['written'])}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from pipelines.registry.promotion import promote, record_decision_run
    from pipelines.settings import Settings
    from pipelines.tracking import runs
    from pipelines.tracking.store import require_existing_store

    settings = Settings.from_env()
    require_existing_store(settings)
    client = runs.client_for(settings, log)
    decision = promote(client, settings, args.model, args.version, args.margin, args.dry_run, args.bootstrap, log)
    if not args.dry_run and not decision.recorded:
        record_decision_run(client, runs.experiment_id(client, settings), decision)
    print(json.dumps(asdict(decision), indent=2))
    verb = "would move" if args.dry_run else "moved"
    outcome = f"{verb} champion to version {decision.challenger}" if decision.promoted else "champion unchanged"
    log(f"{args.model}: {outcome} ({decision.reason})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from pipelines.registry.promotion import rollback
    from pipelines.settings import Settings
    from pipelines.tracking import runs
    from pipelines.tracking.store import require_existing_store

    settings = Settings.from_env()
    require_existing_store(settings)
    restored, demoted = rollback(runs.client_for(settings, log), settings, args.model, log)
    log(f"{args.model}: champion is version {restored} again (version {demoted} is now previous-champion)")
    return 0
