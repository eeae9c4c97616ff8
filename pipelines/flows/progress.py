"""One console line per pipeline step: its number, name, outcome and time.

The steps run one after another, so a step's time is the time since the previous line: the
flow says `done(name, outcome)` after each and nothing has to be wrapped. Prefect's own task
lines stay at DEBUG; Prefect already logs a failed step with its traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gan_core.outputs import format_duration

PIPELINE_STEPS = ("prepare", "search", "train", "evaluate", "register", "promote")


class StepLines:
    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self._since = time.monotonic()

    def done(self, step: str, outcome: str) -> None:
        """`step 2 of 6, search: 4 trials, best objective -1.2 (2 min 5 s)`."""
        now = time.monotonic()
        number = PIPELINE_STEPS.index(step) + 1
        self.log(f"step {number} of {len(PIPELINE_STEPS)}, {step}: {outcome} ({format_duration(now - self._since)})")
        self._since = now
