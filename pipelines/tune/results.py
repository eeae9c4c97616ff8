"""A finished search's results: the table of trials, the best config and its samples, logged to
the search's MLflow run."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gan_core.config import ExperimentConfig
from gan_core.outputs import sample_picture
from gan_core.training import NonFiniteLossError, generator_from_checkpoint, load_checkpoint
from pipelines.storage.datasets import load_for
from pipelines.tracking import runs
from pipelines.train.reporter import CHECKPOINT_FILE
from pipelines.tune.options import SearchResult
from pipelines.tune.space import apply_overrides


def summarise(grid, base, name, folder: Path, client, parent_id, dimensions, log, filesystem) -> SearchResult:
    """The trials' table, the best config (best.yaml) and its samples, all logged to the search's run."""
    keys = [d.key for d in dimensions]
    trials = []
    for result in grid:
        metrics = result.metrics or {}
        config = result.config or {}
        row = {"trial": metrics.get("trial_id", ""), **{k: config.get(k) for k in keys}}
        row.update(
            objective=metrics.get("objective"),
            milestones=metrics.get("training_iteration", 0),
            exploits=metrics.get("exploits", 0),
            step=metrics.get("step", 0),
            stop_reason=metrics.get("stop_reason")
            or ("" if result.error is None else f"error: {type(result.error).__name__}"),
            # A multi-worker trial's checkpoints stay in its Train run; Tune gets their path.
            checkpoint=result.checkpoint.path if result.checkpoint else metrics.get("checkpoint_path", ""),
        )
        trials.append(row)
    best = best_trial(scored_trials(trials, name), name, log)
    best_config = apply_overrides(base, {k: best[k] for k in keys})
    (folder / "best.yaml").write_text(yaml.safe_dump(best_config.to_dict(), sort_keys=False))
    _write_tables(trials, folder)
    best_picture = _best_samples(grid, best, best_config, folder, filesystem)

    runs.log_metrics(client, parent_id, {"best_objective": best["objective"], "trials": len(trials)}, 0)
    for artifact in ("best.yaml", "results.csv", "results.md", best_picture):
        if artifact and (folder / artifact).is_file():
            client.log_artifact(parent_id, str(folder / artifact))
    client.set_tag(parent_id, "ganpipe.best_trial", str(best["trial"]))
    if best["stop_reason"]:
        client.set_tag(parent_id, "ganpipe.best_trial_stop_reason", best["stop_reason"])
    client.set_terminated(parent_id)
    log(f"best trial {best['trial']}: objective {best['objective']:.4f}; best config in {folder / 'best.yaml'}")
    best_params = {k: best[k] for k in keys}
    return SearchResult(
        name, folder, best_config, best["objective"], trials, parent_id, best_params, best["stop_reason"]
    )


def _has_objective(trial: dict[str, Any]) -> bool:
    return trial["objective"] is not None and not math.isnan(trial["objective"])


def scored_trials(trials: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The trials with an objective; none is an error that says what became of each."""
    scored = [t for t in trials if _has_objective(t)]
    if scored:
        return scored
    fates = "; ".join(f"trial {t['trial']}: {(t['stop_reason'] or 'no milestone reached')[:90]}" for t in trials)
    if trials and all(t["stop_reason"].startswith("diverged") for t in trials):
        raise NonFiniteLossError(f"search {name}: every trial diverged ({fates})")
    raise RuntimeError(f"search {name}: no trial reported a result ({fates or 'no trials'})")


def best_trial(finished: list[dict[str, Any]], name: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The highest objective among the trials that were not stopped (a collapsed trial can score
    well at the milestone that stopped it); of all of them, saying so, when every trial was."""
    healthy = [t for t in finished if not t["stop_reason"]]
    best = max(healthy or finished, key=lambda t: t["objective"])
    if not healthy:
        log(
            f"warning: every trial of search {name} was stopped; the best config is that of trial {best['trial']}, "
            f"stopped with: {best['stop_reason']}"
        )
    return best


def _write_tables(trials: list[dict[str, Any]], folder: Path) -> None:
    columns = list(trials[0])
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(trials)
    shown = [c for c in columns if c != "checkpoint"]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in sorted(trials, key=lambda t: -t["objective"] if _has_objective(t) else math.inf):  # unscored last
        lines.append("| " + " | ".join(fmt(row[c]) for c in shown) + " |")
    (folder / "results.md").write_text("\n".join(lines) + "\n")


def _best_samples(grid, best: dict[str, Any], config: ExperimentConfig, folder: Path, filesystem) -> str:
    from ray import tune

    result = next((r for r in grid if r.checkpoint and r.checkpoint.path == best["checkpoint"]), None)
    if result is not None:
        checkpoint = result.checkpoint
    elif best["checkpoint"]:  # a multi-worker trial's, in its Train run
        checkpoint = tune.Checkpoint(best["checkpoint"], filesystem)
    else:
        return ""
    with checkpoint.as_directory() as checkpoint_dir:
        generator = generator_from_checkpoint(load_checkpoint(Path(checkpoint_dir) / CHECKPOINT_FILE))
    dataset = load_for(config)
    title = f"best trial {best['trial']}"
    sample_picture(generator, dataset, config.eval.seed, title).save(folder / "best_samples.png")
    return "best_samples.png"
