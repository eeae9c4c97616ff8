"""`ganpipe evaluate | sample | promote | rollback`: judging, looking at and promoting generators."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.commands import MODELS, add
from pipelines.cli.options import integer_option, log

SAMPLE_HELP = (
    "Draw samples into a picture: a grid of images (one column per class for a conditional generator), a "
    "scatter of points over the true modes, or held-out inputs beside their translations. The same --count, "
    "--seed and --label give the samples the served model returns."
)

ModelArgument = Annotated[str, typer.Argument(metavar="MODEL", help="registered model name")]


def register(app: typer.Typer) -> None:
    add(app, "evaluate", evaluate, help="evaluate a generator with the full protocol", panel=MODELS)
    add(app, "sample", sample, help=SAMPLE_HELP, short_help="draw a generator's samples into a picture (and arrays)",
        panel=MODELS)  # fmt: skip
    add(app, "promote", promote, help="challenger vs champion; move the alias if better", panel=MODELS)
    add(app, "rollback", rollback, help="restore `previous-champion` as `champion`", panel=MODELS)


def evaluate(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE", help="an MLflow model URI (runs:/..., models:/...), a checkpoint file or a run folder"
        ),
    ],
    n_samples: Annotated[
        int | None, integer_option("--n-samples", 10, "samples to generate (default: eval.n_samples)")
    ] = None,
    bootstrap: Annotated[int, integer_option("--bootstrap", 0, "bootstrap resamples for confidence intervals")] = 100,
    json_out: Annotated[str | None, typer.Option("--json", help="write the report to this file as well")] = None,
) -> int:
    from pipelines.evaluate.report import evaluate_source
    from pipelines.settings import Settings

    if json_out and not Path(json_out).parent.is_dir():  # known before minutes of evaluation
        raise FileNotFoundError(f"--json {json_out}: folder {Path(json_out).parent} does not exist")
    summary = evaluate_source(source, Settings.from_env(), n_samples, bootstrap, log=log)
    text = json.dumps(summary, indent=2)
    print(text)
    if json_out:
        Path(json_out).write_text(text)
    if "mlflow_run_id" in summary:
        log(f"evaluation logged to MLflow run {summary['mlflow_run_id']}")
    return 0


def sample(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="an MLflow model URI (models:/NAME@champion, runs:/...), a checkpoint file or a run folder",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="the picture (.png, .jpg or .webp)")] = Path("samples.png"),
    count: Annotated[
        int | None,
        integer_option(
            "--count",
            1,
            "samples to draw (default: 64 images, rounded up to whole rows of classes; 2500 points; 48 translations)",
        ),
    ] = None,
    seed: Annotated[int, integer_option("--seed", 0, "the latent seed (or which held-out inputs)")] = 0,
    label: Annotated[
        int, integer_option("--label", -1, "a conditional generator's class; -1 cycles through them")
    ] = -1,
    arrays: Annotated[Path | None, typer.Option("--arrays", help="also write the samples to this .npz file")] = None,
) -> int:
    from pipelines.evaluate.pictures import SampleRequest, sample_source
    from pipelines.settings import Settings

    request = SampleRequest(source, out, count, seed, label, arrays)
    summary = sample_source(request, Settings.from_env(), log=log)
    print(json.dumps(summary))
    log(f"{summary['source']}: {summary['samples']} -> {', '.join(summary['written'])}")
    return 0


def promote(
    model: ModelArgument,
    version: Annotated[
        str | None, typer.Option("--version", help="version to judge (default: the `challenger` alias)")
    ] = None,
    margin: Annotated[float, typer.Option("--margin", help="the objective's 95% interval must clear this")] = 0.0,
    bootstrap: Annotated[int, integer_option("--bootstrap", 0, "paired bootstrap resamples")] = 200,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the decision, change nothing")] = False,
) -> int:
    from pipelines.registry.promotion import promote as judge
    from pipelines.registry.promotion import record_decision_run
    from pipelines.settings import Settings
    from pipelines.tracking import runs
    from pipelines.tracking.store import require_existing_store

    settings = Settings.from_env()
    require_existing_store(settings)
    client = runs.client_for(settings, log)
    decision = judge(client, settings, model, version, margin, dry_run, bootstrap, log)
    if not dry_run and not decision.recorded:
        record_decision_run(client, runs.experiment_id(client, settings), decision)
    print(json.dumps(asdict(decision), indent=2))
    verb = "would move" if dry_run else "moved"
    outcome = f"{verb} champion to version {decision.challenger}" if decision.promoted else "champion unchanged"
    log(f"{model}: {outcome} ({decision.reason})")
    return 0


def rollback(model: ModelArgument) -> int:
    from pipelines.registry.promotion import rollback as restore
    from pipelines.settings import Settings
    from pipelines.tracking import runs
    from pipelines.tracking.store import require_existing_store

    settings = Settings.from_env()
    require_existing_store(settings)
    restored, demoted = restore(runs.client_for(settings, log), settings, model, log)
    log(f"{model}: champion is version {restored} again (version {demoted} is now previous-champion)")
    return 0
