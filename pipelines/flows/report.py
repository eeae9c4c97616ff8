"""The markdown a pipeline run leaves behind: in Prefect as an artifact, on disk beside the pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gan_core.metrics import metrics_table


def pipeline_report(summary: dict[str, Any]) -> str:
    lines = [f"# gan-pipeline `{summary['name']}`", ""]
    data = summary["dataset"]
    lines += [f"- dataset: `{data['name']}` version `{data['version']}` at `{data['uri']}`"]
    lines += [f"- training run: `{summary['run_name']}` (MLflow run `{summary['run_id']}`)"]
    lines += [f"- model: `{summary['model_name']}` version {summary['version']} (logged as `{summary['model_uri']}`)"]
    if "final" in summary.get("outputs", {}):  # the picture sits beside the report
        lines += ["", f"![samples of the generator]({Path(summary['outputs']['final']).name})"]
    if summary.get("late_collapse"):
        lines += ["", f"**Warning: mode collapse late in training: {summary['late_collapse']}.**"]
    lines += [""] + _decision(summary["decision"]) + [""] + _metrics(summary["metrics"])
    if summary.get("search"):
        search = summary["search"]
        lines += ["", f"## Search `{search['name']}`: {search['trials']} trials, best objective "
                  f"{search['best_objective']:.4f}", "", f"best values: {_values(search['best_params'])}"]  # fmt: skip
        if search.get("best_stop_reason"):
            lines += ["", f"**Warning: every trial was stopped; the best one with: {search['best_stop_reason']}.**"]
        table = Path(search["results_table"])
        if table.is_file():
            lines += ["", table.read_text()]
    if summary.get("latest_search_values"):
        lines += ["", "## Search", "", f"none this run; training used the latest search's best values: "
                  f"{_values(summary['latest_search_values'])}"]  # fmt: skip
    lines += ["", "## Where things are", ""] + [f"- {k}: `{v}`" for k, v in summary["outputs"].items()]
    return "\n".join(lines) + "\n"


def _decision(decision: dict[str, Any]) -> list[str]:
    verdict = "promoted to champion" if decision["promoted"] else "not promoted"
    if decision.get("already_champion"):
        verdict = "is the champion"
    lines = ["## Promotion", "", f"Version {decision['challenger']} {verdict}: {decision['reason']}."]
    if decision.get("difference") is not None:
        lines.append(
            f"Objective {decision['objective_challenger']:.4f} vs champion {decision['objective_champion']:.4f}: "
            f"difference {decision['difference']:+.4f}, 95% CI [{decision['ci_low']:+.4f}, {decision['ci_high']:+.4f}]"
            f", margin {decision['margin']}."
        )
    gates = decision.get("gates") or {}
    if gates:
        lines.append("Gates: " + ", ".join(f"{k} {'passed' if ok else 'FAILED'}" for k, ok in gates.items()) + ".")
    return lines


def _metrics(metrics: dict[str, dict[str, float]]) -> list[str]:
    return ["## Evaluation", "", *metrics_table(metrics), "", REAL_DATA_NOTE]


REAL_DATA_NOTE = (
    "Real data is the held-out split, scored by the same protocol against the training data. A generator "
    "can score better than it, most of all where the split is small (360 images for the 8x8 digits): a "
    "distance measured on few samples comes out larger, and the generator is scored on many more. Where "
    "the generator drew more samples than the split holds, the last column scores only as many of them: "
    "that is the like-for-like comparison."
)


def _values(values: dict[str, Any]) -> str:
    """Search values as `optim.lr_g=0.0002, loss.name=hinge`: 4 significant digits, not 16."""
    return ", ".join(f"`{k}={v:.4g}`" if isinstance(v, float) else f"`{k}={v}`" for k, v in values.items())
