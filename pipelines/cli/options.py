"""What the command line accepts, checked where argparse reads it: one line naming the option and
what it allows, before anything starts."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

# A run, search or pipeline name becomes a folder, an S3 prefix and an MLflow run name: one path
# component ("../x" wrote outside the runs folder), of characters all three take.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


# --cpus-per-worker's default, decided once the cluster is known (`Scaling.sized_for`)
CPUS_DEFAULT = "default: a local cluster's CPUs shared among the workers; 1 on a cluster at RAY_ADDRESS"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, unless the help already names it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def run_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not allowed: up to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer option's type that refuses values below `minimum`."""

    def integer(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{number} is not allowed: an integer >= {minimum}")
        return number

    integer.__name__ = f"integer >= {minimum}"
    return integer


def non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value} is not allowed: a number >= 0")
    return number


def add_config_options(parser: argparse.ArgumentParser) -> None:
    from gan_core.config import preset_names

    parser.add_argument("--preset", default=None, help=f"a shipped config: {', '.join(preset_names())}")
    parser.add_argument("--config", default=None, help="a YAML config file (applied after the preset)")
    parser.add_argument(
        "--model", dest="model_name", default=None, help="model architecture, shorthand for --set model.name=NAME"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set optim.lr_g=2e-4 (repeatable)",
    )


def resolve_config(args: argparse.Namespace):
    """The ExperimentConfig the config options name: preset, then file, then overrides."""
    import yaml

    from gan_core.config import load_config, preset_path

    base = yaml.safe_load(preset_path(args.preset).read_text()) if args.preset else None
    model = [f"model.name={args.model_name}"] if getattr(args, "model_name", None) else []
    return load_config(args.config, [*model, *args.overrides], base=base)


def log(line: str) -> None:
    """A progress or outcome line, on stderr (stdout is for what a command prints as its result)."""
    print(line, file=sys.stderr, flush=True)
