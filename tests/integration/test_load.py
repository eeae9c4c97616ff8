"""A small version of bench/load.py: 2 trainings at once, then 2 promotions of one model at once,
then 2 pipelines at once, against one MLflow server, one Ray cluster and one Prefect server.
Nothing may be lost, doubled or left behind (the figures themselves are the bench's to print)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TRAININGS, PROMOTIONS, PIPELINES = 2, 2, 2  # each phase still runs its commands at once


def test_a_teams_load_loses_nothing_and_promotes_one_champion(tmp_path: Path):
    figures = tmp_path / "load.json"
    bench = subprocess.run(
        [sys.executable, str(REPO / "bench" / "load.py"), "--trainings", str(TRAININGS), "--promotions",
         str(PROMOTIONS), "--pipelines", str(PIPELINES), "--timeout", "600", "--json", str(figures)],
        capture_output=True, text=True, timeout=1500, cwd=tmp_path,
    )  # fmt: skip
    output = bench.stdout[-6000:] + bench.stderr[-3000:]
    assert figures.exists(), output
    report = json.loads(figures.read_text())

    assert report["trainings_failed"] == [], output
    # Every metric point of every training run (the trainings' and the pipelines'), once.
    assert len(report["metrics"]) == TRAININGS + PIPELINES, output
    for run in report["metrics"]:
        assert run["expected"] > 0 and run["lost"] == 0 and run["duplicated"] == 0, (run, output)
        assert run["logged"] == run["expected"], (run, output)
    assert all(phase["server_errors"] == 0 for phase in report["requests"]), output

    promotions = report["promotions"]
    assert promotions["failed"] == [] and len(promotions["decisions"]) == PROMOTIONS, output
    assert promotions["champion"] is not None and promotions["one_chain"], output
    assert promotions["recorded"] == PROMOTIONS, output
    assert promotions["leases_left"] == [], output

    assert [(p["code"], p["state"]) for p in report["pipelines"]] == [(0, "COMPLETED")] * PIPELINES, output
    assert all(p["champion"] for p in report["pipelines"]), output
    assert bench.returncode == 0, output
