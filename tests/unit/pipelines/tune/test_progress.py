"""A search prints one line per trial as it ends: its objective, milestone and how it ended."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

from pipelines.tune.progress import TrialLines


def _trial(result: dict, error_file: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id="f00d_00001", last_result=result, error_file=error_file)


def test_each_ending_in_one_line(capsys):
    lines = TrialLines(milestones=4)
    lines.on_trial_complete(1, [], _trial({"objective": 0.91234, "training_iteration": 4, "stop_reason": ""}))
    lines.on_trial_complete(2, [], _trial({"objective": 0.2, "training_iteration": 1, "stop_reason": ""}))
    collapse = "mode collapse: coverage 0.25 still below 0.50 at milestone 2"
    lines.on_trial_complete(3, [], _trial({"objective": 0.1, "training_iteration": 2, "stop_reason": collapse}))
    lines.on_trial_error(4, [], _trial({}, "/tmp/ray/f00d/error.txt"))
    assert capsys.readouterr().err.splitlines() == [
        "trial f00d_00001: objective 0.9123 at milestone 4/4, finished",
        "trial f00d_00001: objective 0.2000 at milestone 1/4, stopped early by the scheduler (weaker than its "
        "peers at that milestone)",
        f"trial f00d_00001: objective 0.1000 at milestone 2/4, stopped: {collapse}",
        "trial f00d_00001: no objective yet at milestone 0/4, failed (/tmp/ray/f00d/error.txt)",
    ]


def test_it_is_saved_with_the_search_state():
    assert pickle.loads(pickle.dumps(TrialLines(milestones=3))).milestones == 3
