"""`ganpipe config | list`: the resolved config, and what the registries hold."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from pipelines.cli.commands import CATALOG, add
from pipelines.cli.options import ConfigChoice, ConfigFile, ModelName, Overrides, Preset

Listable = Literal["models", "losses", "datasets", "metrics", "presets", "spaces"]


def register(app: typer.Typer) -> None:
    add(app, "config", show_config, help="print the resolved config as YAML", panel=CATALOG)
    add(app, "list", list_names, help="list models, losses, datasets, metrics, presets or search spaces", panel=CATALOG)


def show_config(preset: Preset = None, config: ConfigFile = None, model: ModelName = None,
                overrides: Overrides = None) -> int:  # fmt: skip
    import yaml

    resolved = ConfigChoice(preset, config, model, tuple(overrides or ())).resolve()
    print(yaml.safe_dump(resolved.to_dict(), sort_keys=False), end="")
    return 0


def list_names(what: Annotated[Listable, typer.Argument(help="what to list")]) -> int:
    if what in ("presets", "spaces"):
        from gan_core.config import preset_names
        from pipelines.tune.space import shipped_spaces

        for name in preset_names() if what == "presets" else shipped_spaces():
            print(name)
        return 0
    from gan_core.data import DATASETS
    from gan_core.losses import LOSSES
    from gan_core.metrics import METRICS
    from gan_core.models import MODELS

    registry = {"models": MODELS, "losses": LOSSES, "datasets": DATASETS, "metrics": METRICS}[what]
    width = max(len(n) for n in registry.names())
    for name, description in registry.describe().items():
        print(f"{name:<{width}}  {description}")
    return 0
