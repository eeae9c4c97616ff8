"""Promotion and rollback: the challenger against the champion, on the same protocol.

`promote` evaluates challenger and champion on the same protocol (same latent seeds),
bootstraps a confidence interval of the objective's difference over paired resamples, and
moves `champion` (keeping `previous-champion`) only when the challenger is better beyond a
margin and passes absolute gates. With no champion, the gates alone decide. Promotions of one
model run one at a time, each holding the model's lease in storage (storage/lease.py), so two
racing promotions are decided in turn and neither decision is lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gan_core.metrics import Evaluator, coverage_from_metrics, objective_of, subset_view
from pipelines.registry.versions import CHALLENGER, CHAMPION, PREVIOUS
from pipelines.settings import Settings
from pipelines.storage.datasets import load_for
from pipelines.storage.lease import LeaseTiming, holding
from pipelines.storage.location import Storage
from pipelines.tracking.model import load_served_generator
from pipelines.tracking.runs import log_metrics
from pipelines.tracking.server import REFUSED

# Another promotion of the same model is waited for (it takes a minute or two), not refused.
PROMOTION_LEASE = LeaseTiming(wait_s=300.0)


class PromotionError(LookupError):
    """Promotion cannot proceed (no such model, no challenger)."""


@dataclass
class Decision:
    model: str
    challenger: str
    champion: str | None
    promoted: bool
    reason: str
    objective_challenger: float
    objective_champion: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    margin: float = 0.0
    gates: dict[str, bool] = field(default_factory=dict)
    dry_run: bool = False
    recorded: bool = False  # True when this decision was read back, not recomputed
    already_champion: bool = False  # the candidate is the champion: nothing was decided


# --------------------------------------------------------------------------- promotion


def _version_by_alias(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if error.error_code in REFUSED:
            raise
        return None


def promote(
    client: MlflowClient,
    settings: Settings,
    name: str,
    version: str | None = None,
    margin: float = 0.0,
    dry_run: bool = False,
    resamples: int = 200,
    log: Callable[[str], None] = print,
) -> Decision:
    """Decide whether `version` (default: the `challenger` alias) replaces `champion`."""
    _require_model(client, name)
    if dry_run:
        return _decide(client, settings, name, version, margin, resamples, log, dry_run=True)
    with promotions_of(name, settings, log):
        return _decide(client, settings, name, version, margin, resamples, log, dry_run=False)


def _require_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code in REFUSED:  # the account, not the name: said as such (cli/refusals.py)
            raise
        raise PromotionError(f"no registered model named {name!r}") from None


def promotions_of(name: str, settings: Settings, log: Callable[[str], None]):
    """The lease under which one promotion (or rollback) of `name` runs at a time."""
    folder = Storage.from_uri(settings.storage_uri).child("registry", name)
    return holding(folder, f"a promotion of {name}", log, PROMOTION_LEASE)


def _decide(client, settings, name, version, margin, resamples, log, dry_run) -> Decision:
    candidate = client.get_model_version(name, version) if version else _version_by_alias(client, name, CHALLENGER)
    if candidate is None:
        raise PromotionError(f"{name!r} has no version aliased {CHALLENGER!r}; register one or pass --version")
    champion = _version_by_alias(client, name, CHAMPION)
    if champion is not None and champion.version == candidate.version:
        return _already_champion(name, candidate)
    recorded = candidate.tags.get(_decision_tag(champion))
    if recorded and Decision(**json.loads(recorded)).margin == margin:  # this pair, decided on this protocol
        return _as_recorded(Decision(**json.loads(recorded)), dry_run)

    challenger_gen, config = load_served_generator(f"models:/{name}/{candidate.version}", settings.tracking_uri)
    dataset = load_for(config)
    evaluator = Evaluator(dataset, config.eval, cache_dir=settings.classifier_cache, log=log)
    challenger_view, challenger_metrics = _scored(evaluator, challenger_gen)
    gates = {
        "finite_outputs": bool(torch.isfinite(challenger_view.x.flatten(1)).all()),
        "coverage": coverage_from_metrics(challenger_metrics, dataset) >= config.eval.collapse_threshold,
    }
    objective = objective_of(challenger_metrics, dataset)
    decision = Decision(
        name,
        candidate.version,
        champion.version if champion else None,
        False,
        "",
        objective,
        margin=margin,
        gates=gates,
        dry_run=dry_run,
    )

    if not all(gates.values()):
        decision.reason = "failed gates: " + ", ".join(g for g, ok in gates.items() if not ok)
    elif champion is None:
        decision.promoted, decision.reason = True, "no champion yet; gates passed"
    else:
        champion_gen, _ = load_served_generator(f"models:/{name}/{champion.version}")
        champion_view, champion_metrics = _scored(evaluator, champion_gen)
        decision.objective_champion = objective_of(champion_metrics, dataset)
        decision.difference = objective - decision.objective_champion
        decision.ci_low, decision.ci_high = _paired_interval(evaluator, challenger_view, champion_view, resamples)
        decision.promoted = decision.ci_low > margin
        verdict = "better" if decision.promoted else "not better"
        interval = f"95% CI [{decision.ci_low:+.4g}, {decision.ci_high:+.4g}]"
        decision.reason = (
            f"challenger {verdict}: objective difference {decision.difference:+.4g}, {interval}, margin {margin}"
        )
    if not dry_run:
        _apply(client, name, decision, champion)
    return decision


def _scored(evaluator: Evaluator, generator):
    view = evaluator.sample(generator)  # fixed latents, or a translator's held-out inputs
    return view, evaluator.score(view)


def _paired_interval(evaluator: Evaluator, challenger, champion, resamples: int) -> tuple[float, float]:
    """Percentile 95% interval of objective(challenger) - objective(champion) over paired
    resamples: both generators drew from the same latents, so sample i pairs with sample i."""
    rng = torch.Generator().manual_seed(evaluator.config.seed + 2)
    n = len(challenger.x)
    dataset = evaluator.dataset
    differences = []
    for _ in range(resamples):
        index = torch.randint(n, (n,), generator=rng)
        a = objective_of(evaluator.score(subset_view(challenger, index)), dataset)
        b = objective_of(evaluator.score(subset_view(champion, index)), dataset)
        differences.append(a - b)
    values = torch.tensor(differences, dtype=torch.float64)
    return float(values.quantile(0.025)), float(values.quantile(0.975))


def _as_recorded(decision: Decision, dry_run: bool) -> Decision:
    """A decision read back moves nothing. One that promoted the candidate over this very champion
    was undone since (`ganpipe rollback`): it is reported as such, not as a promotion (the
    command used to say it had moved the champion when it had not)."""
    decision.recorded, decision.dry_run = True, dry_run
    if decision.promoted:
        decision.promoted = False
        decision.reason = (
            f"version {decision.challenger} was promoted over version {decision.champion} before and rolled back "
            f"since; the champion stays (recorded: {decision.reason})"
        )
    return decision


def _already_champion(name: str, candidate) -> Decision:
    """Nothing to decide; with the figures of the decision that made it champion, where recorded
    (a pipeline re-run reported "already the champion" in place of the figures it was promoted on)."""
    decided = [Decision(**json.loads(v)) for k, v in sorted(candidate.tags.items()) if k.startswith("promotion.vs.")]
    made_champion = [decision for decision in decided if decision.promoted]
    if not made_champion:
        return Decision(
            name, candidate.version, candidate.version, False, "already the champion", float("nan"), recorded=True,
            already_champion=True,
        )  # fmt: skip
    decision = made_champion[-1]
    over = f"over version {decision.champion}" if decision.champion else "as the first champion"
    decision.reason = f"already the champion (promoted {over}: {decision.reason})"
    decision.champion, decision.promoted, decision.recorded = candidate.version, False, True
    decision.already_champion = True
    return decision


def _decision_tag(champion) -> str:
    return f"promotion.vs.{champion.version if champion else 'none'}"


def _apply(client: MlflowClient, name: str, decision: Decision, champion) -> None:
    """Move the aliases (if promoted) and record the decision on both versions."""
    if decision.promoted:
        if champion is not None:
            client.set_registered_model_alias(name, PREVIOUS, champion.version)
        client.set_registered_model_alias(name, CHAMPION, decision.challenger)
    record = json.dumps(asdict(decision))
    client.set_model_version_tag(name, decision.challenger, _decision_tag(champion), record)
    client.set_model_version_tag(
        name, decision.challenger, "promotion.last", "promoted" if decision.promoted else "refused"
    )
    if champion is not None:
        outcome = "replaced" if decision.promoted else "defended"
        client.set_model_version_tag(name, champion.version, f"promotion.against.{decision.challenger}", outcome)


def rollback(
    client: MlflowClient, settings: Settings, name: str, log: Callable[[str], None] = print
) -> tuple[str, str]:
    """`champion` back to `previous-champion`; the demoted version becomes `previous-champion`."""
    _require_model(client, name)
    with promotions_of(name, settings, log):
        previous = _version_by_alias(client, name, PREVIOUS)
        current = _version_by_alias(client, name, CHAMPION)
        if previous is None:
            raise PromotionError(f"{name!r} has no {PREVIOUS!r} to roll back to")
        client.set_registered_model_alias(name, CHAMPION, previous.version)
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current.version)
            client.set_model_version_tag(name, current.version, "promotion.last", "rolled back")
        client.set_model_version_tag(name, previous.version, "promotion.last", "restored by rollback")
        return previous.version, current.version if current else ""


def record_decision_run(client: MlflowClient, experiment_id: str, decision: Decision) -> str:
    """Every decision is also an MLflow run, so the history of promotions is searchable."""
    tags = {
        "ganpipe.kind": "promotion",
        "model": decision.model,
        "challenger": decision.challenger,
        "champion": str(decision.champion),
        "promoted": str(decision.promoted),
        "reason": decision.reason[:5000],
    }
    run = client.create_run(experiment_id, run_name=f"promote-{decision.model}-v{decision.challenger}", tags=tags)
    values = {k: v for k, v in asdict(decision).items() if isinstance(v, float) and v == v}
    log_metrics(client, run.info.run_id, values, 0)
    client.set_terminated(run.info.run_id)
    return run.info.run_id
