"""What a pipeline run has already finished, kept in storage so a re-run skips it.

Each finished step writes a small JSON record under pipelines/NAME/DATASET_VERSION/; a
re-run of the same pipeline on the same data reads it back instead of redoing the step.
The records live in the storage layer, not on the machine, so a re-run on another worker
sees them too.
"""

from __future__ import annotations

import json
from typing import Any

from pipelines.storage.location import Storage


class Stages:
    def __init__(self, storage: Storage, pipeline: str, dataset_version: str) -> None:
        self.where = storage.child("pipelines", pipeline, dataset_version)

    def finished(self, step: str) -> dict[str, Any] | None:
        name = f"{step}.json"
        return json.loads(self.where.read_bytes(name)) if self.where.exists(name) else None

    def record(self, step: str, outcome: dict[str, Any]) -> dict[str, Any]:
        self.where.write_bytes(f"{step}.json", json.dumps(outcome, indent=2, default=str).encode())
        return outcome
