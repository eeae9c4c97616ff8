"""A finished search's summary: which trial is best, and what became of trials without a result."""

import pytest

from gan_core.training import NonFiniteLossError
from pipelines.tune.results import best_trial, scored_trials


def test_the_best_trial_is_one_that_was_not_stopped_and_a_search_of_stopped_trials_says_so():
    """A trial stopped for collapse can still have the highest objective at the milestone that
    stopped it: the search named it best, and the pipeline trained it without a word."""
    collapsed = {"trial": "a", "objective": -0.4, "stop_reason": "mode collapse: coverage 0.10 still below 0.50"}
    healthy = {"trial": "b", "objective": -0.9, "stop_reason": ""}
    said: list[str] = []
    assert best_trial([collapsed, healthy], "s", said.append)["trial"] == "b" and not said
    assert best_trial([collapsed], "s", said.append)["trial"] == "a"
    assert said == [
        "warning: every trial of search s was stopped; the best config is that of trial a, "
        "stopped with: mode collapse: coverage 0.10 still below 0.50"
    ]


def test_a_search_without_an_objective_says_what_became_of_each_trial():
    diverged = {
        "trial": "a",
        "objective": float("nan"),
        "stop_reason": "diverged: non-finite training metrics by step 600",
    }
    died = {"trial": "b", "objective": None, "stop_reason": "error: ActorDiedError"}
    fine = {"trial": "c", "objective": 0.4, "stop_reason": ""}
    assert scored_trials([diverged, died, fine], "s") == [fine]
    with pytest.raises(NonFiniteLossError, match=r"search s: every trial diverged \(trial a: diverged: .* step 600\)"):
        scored_trials([diverged, dict(diverged, trial="d")], "s")
    with pytest.raises(
        RuntimeError, match=r"no trial reported a result \(trial a: .*; trial b: error: ActorDiedError\)"
    ):
        scored_trials([diverged, died], "s")
