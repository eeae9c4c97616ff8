"""A search's progress as a person reads it: one line as each trial ends, instead of Tune's
box tables (some 240 lines of a demo's console, many wider than a terminal).

Tune's own output is turned off (`verbose=0`); this callback runs in the driver, where Tune
calls it as trials end. It holds no state that cannot be pickled (Tune saves its callbacks
with the search's state, so that a resumed search has them).
"""

from __future__ import annotations

from ray.tune import Callback

from pipelines.train.worker import write_line as write  # a line on stderr, as the workers write theirs


class TrialLines(Callback):
    """`trial NAME: objective X at milestone M/N, <how it ended>` on stderr, one per trial."""

    def __init__(self, milestones: int) -> None:
        self.milestones = milestones

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        result = trial.last_result or {}
        reached = int(result.get("training_iteration", 0))
        write(f"{self._head(trial, result, reached)}, {self._ending(result, reached)}")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        result = trial.last_result or {}
        cause = str(trial.error_file or "see its error file").strip()
        write(f"{self._head(trial, result, int(result.get('training_iteration', 0)))}, failed ({cause})")

    def _head(self, trial, result: dict, reached: int) -> str:
        objective = result.get("objective")
        shown = f"objective {objective:.4f}" if isinstance(objective, int | float) else "no objective yet"
        return f"trial {trial.trial_id}: {shown} at milestone {reached}/{self.milestones}"

    def _ending(self, result: dict, reached: int) -> str:
        if result.get("stop_reason"):
            return f"stopped: {result['stop_reason']}"
        if reached >= self.milestones:
            return "finished"
        return "stopped early by the scheduler (weaker than its peers at that milestone)"
