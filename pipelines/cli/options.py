"""What the command line accepts, checked where Typer reads it: one line naming the option, the
value and what it allows, before anything starts."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

import typer

from gan_core.config import preset_names

# A run, search or pipeline name becomes a folder, an S3 prefix and an MLflow run name: one path
# component ("../x" wrote outside the runs folder), of characters all three take.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


# --cpus-per-worker's default, decided once the cluster is known (`Scaling.sized_for`)
CPUS_DEFAULT = "default: a local cluster's CPUs shared among the workers; 1 on a cluster at RAY_ADDRESS"


def run_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r} is not allowed: up to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer option's parser that refuses values below `minimum`. Typer's own `min=` says
    "Input should be greater than or equal to 1" without the value given; this names it."""

    def integer(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not an integer") from None
        if number < minimum:
            raise typer.BadParameter(f"{number} is not allowed: an integer >= {minimum}")
        return number

    return integer


def non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not number >= 0:  # also refuses nan
        raise typer.BadParameter(f"{value} is not allowed: a number >= 0")
    return number


def one_of(choices: Iterable[str]) -> Callable[[str], str]:
    """A parser for a repeatable option with choices (Typer takes no list of Literal)."""
    allowed = tuple(choices)

    def choice(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return choice


def integer_option(flag: str, minimum: int, help: str, **settings) -> typer.models.OptionInfo:
    """An integer option >= `minimum`, its bound in the metavar as Typer's own `min=` shows it."""
    return typer.Option(flag, parser=at_least(minimum), metavar=f"INTEGER>={minimum}", help=help, **settings)


def number_option(flag: str, help: str) -> typer.models.OptionInfo:
    """A number option >= 0 (CPUs, GPUs)."""
    return typer.Option(flag, parser=non_negative, metavar="NUMBER>=0", help=help)


def name_option(flag: str, help: str, **settings) -> typer.models.OptionInfo:
    """A run, search or pipeline name (see NAME)."""
    return typer.Option(flag, parser=run_name, metavar="NAME", help=help, **settings)


# The config options of `train`, `tune` and `config`: preset, then file, then overrides.
Preset = Annotated[str | None, typer.Option("--preset", help=f"a shipped config: {', '.join(preset_names())}")]
ConfigFile = Annotated[str | None, typer.Option("--config", help="a YAML config file (applied after the preset)")]
ModelName = Annotated[
    str | None, typer.Option("--model", help="model architecture, shorthand for --set model.name=NAME")
]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="override one value, e.g. --set optim.lr_g=2e-4 (repeatable)"),
]


@dataclass(frozen=True)
class ConfigChoice:
    """What the config options name."""

    preset: str | None = None
    config: str | None = None
    model_name: str | None = None
    overrides: tuple[str, ...] = ()

    def given(self) -> bool:
        return bool(self.preset or self.config or self.model_name or self.overrides)

    def resolve(self):
        """The ExperimentConfig: preset, then file, then overrides."""
        import yaml

        from gan_core.config import load_config, preset_path

        base = yaml.safe_load(preset_path(self.preset).read_text()) if self.preset else None
        model = [f"model.name={self.model_name}"] if self.model_name else []
        return load_config(self.config, [*model, *self.overrides], base=base)


def log(line: str) -> None:
    """A progress or outcome line, on stderr (stdout is for what a command prints as its result)."""
    print(line, file=sys.stderr, flush=True)
