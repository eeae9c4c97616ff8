"""Registered versions: a generator becomes a version of a model, with its lineage, aliased
`challenger`; its model card says what it was trained on, how, and how it scores."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from mlflow.tracking import MlflowClient

from gan_core.metrics import metrics_table

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"


def register_generator(
    client: MlflowClient,
    name: str,
    model_uri: str,
    run_id: str,
    run_name: str,
    tags: dict[str, str],
    report: dict[str, Any],
    log: Callable[[str], None] = print,
    card: str = "",
) -> str:
    """Register the generator of training run `run_id` once: a repeated call returns the same
    version. The model `card` (Markdown) becomes the version's description."""
    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if existing:
        version = max(existing, key=lambda v: int(v.version)).version
        log(f"{name} version {version} already holds run {run_id}; not registering it twice")
        return version
    lineage = {**tags, "training.run_id": run_id, "training.run_name": run_name}
    lineage.update({f"metric.{k}": f"{v['value']:.6g}" for k, v in report.items()})
    version = register_version(client, name, model_uri, lineage)
    if card:
        client.update_model_version(name, version, description=card_for_model_page(card, run_id))
    log(f"registered {name} version {version} (alias {CHALLENGER})")
    return version


def register_version(client: MlflowClient, name: str, model_uri: str, tags: dict[str, str]) -> str:
    """A new version of `name` from `model_uri`, tagged with its lineage, aliased `challenger`."""
    import mlflow

    mlflow.set_tracking_uri(client.tracking_uri)
    version = mlflow.register_model(model_uri, name, tags=tags, await_registration_for=120)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return version.version


def card_for_model_page(card: str, run_id: str) -> str:
    """The card as MLflow's model version page shows it (Markdown, rendered): its pictures, paths
    among the run's artifacts, become the tracking server's artifact URLs. They are written
    relative to the page, so they hold behind any host name or proxy."""

    def served(match: re.Match) -> str:
        query = urllib.parse.urlencode({"path": match.group(2), "run_uuid": run_id})
        return f"![{match.group(1)}](get-artifact?{query})"

    return re.sub(r"!\[([^]]*)\]\(([^)]+)\)", served, card)


def model_card(name: str, run_name: str, config_flat: dict, tags: dict[str, str], report: dict, picture: str) -> str:
    """Markdown: what the generator was trained on, how, its metrics with intervals, its samples."""
    lines = [
        f"# {name}: generator from run `{run_name}`",
        "",
        f"- dataset: `{tags.get('dataset.name')}` version `{tags.get('dataset.version')}`",
        f"- model: `{config_flat['model.name']}`, conditioning `{config_flat['model.conditioning']}`,"
        f" pack {config_flat['model.pack']}",
        f"- loss: `{config_flat['loss.name']}`, R1 {config_flat['loss.r1_weight']}; {config_flat['train.steps']} steps,"
        f" batch {config_flat['train.batch_size']}, lr G/D {config_flat['optim.lr_g']}/{config_flat['optim.lr_d']}",
        f"- config hash `{tags.get('config.hash')}`, code `{tags.get('code.version')}`",
        "",
        *metrics_table(report),
    ]
    lines += ["", f"![samples]({picture})", ""]
    return "\n".join(lines)
