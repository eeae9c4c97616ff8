"""Fault injection for Ray Train workers and Tune trials, as hook factories.

`train_distributed(..., hooks=[CrashOnce(...)])` and `run_search(..., hooks=[...])` hand each
factory to every worker or trial, which calls it with its rank; the factory returns the hooks
for that rank (none for the others). Pickled by value (tests/integration/conftest.py), so Ray's
workers need not import this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from gan_core.training import Hook, TrainState


@dataclass(frozen=True)
class CrashOnce:
    """Once (per marker file), at `at_step`, the worker of `rank` kills its own process ("exit":
    a node lost) or fills its generator's first weight with NaN ("nan": a divergence)."""

    at_step: int
    marker: str
    kind: Literal["exit", "nan"] = "exit"
    rank: int = 0
    in_train_run: bool = True  # False in an in-process Tune trial: no Ray Train checkpoints to wait for

    def __call__(self, rank: int) -> list[Hook]:
        return [_Crash(self)] if rank == self.rank else []


@dataclass(frozen=True)
class FailsEveryAttempt:
    """From `at_step` on, rank 0 raises on every attempt (a bug, or a config that cannot train),
    adding a line to `marker` each time so that a test can count the attempts."""

    at_step: int
    marker: str

    def __call__(self, rank: int) -> list[Hook]:
        return [_Failing(self)] if rank == 0 else []


class _Crash(Hook):
    def __init__(self, crash: CrashOnce) -> None:
        self.crash = crash

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        crash = self.crash
        if step < crash.at_step or os.path.exists(crash.marker):
            return
        if crash.kind == "nan":
            Path(crash.marker).write_text(str(step))
            with torch.no_grad():
                next(state.generator.parameters()).fill_(float("nan"))
            return
        if crash.in_train_run:
            import ray.train

            # Die only once Ray has registered the checkpoints reported so far, so that the
            # test knows which checkpoint the replacement must resume from.
            ray.train.get_all_reported_checkpoints()
        Path(crash.marker).write_text(str(step))
        os._exit(1)


class _Failing(Hook):
    def __init__(self, failure: FailsEveryAttempt) -> None:
        self.failure = failure

    def on_metrics(self, step: int, metrics: dict[str, float], state: TrainState) -> None:
        if step >= self.failure.at_step:
            with open(self.failure.marker, "a") as attempts:
                attempts.write(f"{step}\n")
            raise RuntimeError(f"fails at step {step} on every attempt (test aid)")
