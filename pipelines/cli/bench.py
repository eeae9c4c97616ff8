"""`ganpipe bench quality`: the benchmark scripts of bench/ that ship with the package."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.benchmarks.quality import BENCHMARKS, QualityOptions, run
from pipelines.cli.commands import BENCHMARKS as PANEL
from pipelines.cli.commands import add
from pipelines.cli.options import integer_option, one_of

DEFAULT = QualityOptions()
QUALITY_HELP = "modes / high-quality / KL on ring, grid (and stacked digits) over seeds, beside published rows"


def register(app: typer.Typer) -> None:
    bench = typer.Typer(no_args_is_help=True)
    add(bench, "quality", quality, help=QUALITY_HELP, path="bench quality")
    app.add_typer(bench, name="bench", help="run a benchmark and print its table", rich_help_panel=PANEL)


def quality(
    seeds: Annotated[int, integer_option("--seeds", 1, "seeds per benchmark (from --first-seed)")] = DEFAULT.seeds,
    first_seed: Annotated[
        int, integer_option("--first-seed", 0, "first seed (to add seeds to a measurement without repeating it)")
    ] = DEFAULT.first_seed,
    steps: Annotated[int | None, integer_option("--steps", 1, "override train.steps of every preset")] = None,
    benches: Annotated[
        list[str] | None,
        typer.Option(
            "--bench",
            parser=one_of(sorted(BENCHMARKS)),
            metavar="|".join(sorted(BENCHMARKS)),
            help="benchmark to run (repeatable; default: ring and grid, plus stacked with --stacked)",
        ),
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="train this preset instead of the benchmark's own")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="config override for every run (repeatable)"),
    ] = None,
    stacked: Annotated[
        bool, typer.Option("--stacked", help="also stacked digits (1000 modes; slow on CPU)")
    ] = DEFAULT.stacked,
    stacked_seeds: Annotated[
        int | None, integer_option("--stacked-seeds", 1, "seeds for stacked digits (default: --seeds)")
    ] = None,
    ablation: Annotated[
        bool, typer.Option("--ablation", help="run the ablation ladder instead of the preset alone")
    ] = DEFAULT.ablation,
    threads: Annotated[
        int, integer_option("--threads", 1, "torch CPU threads per run (1: small MLPs gain little from more)")
    ] = DEFAULT.threads,
    jobs: Annotated[
        int, integer_option("--jobs", 1, "seeds trained at once, each in its own process (2 fills 2 cores)")
    ] = DEFAULT.jobs,
    quick: Annotated[bool, typer.Option("--quick", help="smoke mode: 2 seeds and a few hundred steps")] = DEFAULT.quick,
    cache: Annotated[str, typer.Option("--cache", help="where the digits classifier is cached")] = DEFAULT.cache,
    jsonl: Annotated[str | None, typer.Option("--jsonl", help="also append the JSON lines to this file")] = None,
    pictures: Annotated[
        str | None,
        typer.Option("--pictures", metavar="DIR", help="save each run's samples here (truncated beside untruncated)"),
    ] = None,
) -> int:
    options = QualityOptions(
        seeds=seeds, first_seed=first_seed, steps=steps, benches=tuple(benches or ()), preset=preset,
        overrides=tuple(overrides or ()), stacked=stacked, stacked_seeds=stacked_seeds, ablation=ablation,
        threads=threads, jobs=jobs, quick=quick, cache=cache, jsonl=jsonl, pictures=pictures,
    )  # fmt: skip
    return run(options)
