"""Scheduled deployments of gan-pipeline on a Prefect process work pool (`ganpipe deploy`).

nightly-train: prepare the data and train the latest search's best config (no search).
weekly-search: prepare, search, then train and promote the winner.
Both run on a process work pool: a `prefect worker` started where the package is installed
executes them from this source tree, so no container registry is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = "pipelines/flows/pipeline.py:gan_pipeline"
DEFAULT_POOL = "ganpipe-process"


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str  # UTC
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


def schedules(nightly_cron: str, weekly_cron: str, parameters: dict[str, Any]) -> list[Schedule]:
    return [
        Schedule(
            "nightly-train",
            nightly_cron,
            "train the latest best config on the current data; promote if better",
            {**parameters, "search_samples": 0},
        ),
        Schedule(
            "weekly-search",
            weekly_cron,
            "search hyperparameters, train the winner longer, promote if better",
            {"search_samples": 8, **parameters},
        ),
    ]


def ensure_process_pool(pool: str) -> None:
    """Create the work pool (type process, default job template) unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(WorkPoolCreate(name=pool, type="process", base_job_template=template))


def deploy(pool: str, wanted: list[Schedule], source: Path = PROJECT_ROOT) -> dict[str, str]:
    """Create or update each deployment; returns {deployment name: id}."""
    from prefect import Flow

    ensure_process_pool(pool)
    flow = Flow.from_source(source=str(source), entrypoint=ENTRYPOINT)
    ids = {}
    for schedule in wanted:
        deployment_id = flow.deploy(
            name=schedule.name,
            work_pool_name=pool,
            cron=schedule.cron,
            parameters=schedule.parameters,
            description=schedule.description,
            tags=["ganpipe"],
            # A run that starts while the previous one still runs waits for it (Prefect's ENQUEUE):
            # both would train the same run, which the run's lease refuses (storage/lease.py).
            concurrency_limit=1,
            print_next_steps=False,
        )
        ids[f"{flow.name}/{schedule.name}"] = str(deployment_id)
    return ids
