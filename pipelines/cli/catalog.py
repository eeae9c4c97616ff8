"""`ganpipe config | list`: the resolved config, and what the registries hold."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.cli.options import HelpFormatter, add_config_options, resolve_config

LISTS = ("models", "losses", "datasets", "metrics", "presets", "spaces")


def add_commands(commands: Any) -> None:
    show = commands.add_parser("config", help="print the resolved config as YAML", formatter_class=HelpFormatter)
    add_config_options(show)
    show.set_defaults(handler=cmd_config)

    listing = commands.add_parser(
        "list", help="list models, losses, datasets, metrics, presets or search spaces", formatter_class=HelpFormatter
    )
    listing.add_argument("what", choices=LISTS)
    listing.set_defaults(handler=cmd_list)


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(resolve_config(args).to_dict(), sort_keys=False), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what in ("presets", "spaces"):
        from gan_core.config import preset_names
        from pipelines.tune.space import shipped_spaces

        for name in preset_names() if args.what == "presets" else shipped_spaces():
            print(name)
        return 0
    from gan_core.data import DATASETS
    from gan_core.losses import LOSSES
    from gan_core.metrics import METRICS
    from gan_core.models import MODELS

    registry = {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "metrics": METRICS}[args.what]
    width = max(len(n) for n in registry.names())
    for name, description in registry.describe().items():
        print(f"{name:<{width}}  {description}")
    return 0
