"""The report a pipeline run leaves: a re-run says as much as the run it repeats."""

from pipelines.flows.report import pipeline_report


def _summary(decision: dict, **more) -> dict:
    return {
        "name": "digits",
        "dataset": {"name": "digits", "version": "04ff5e37be5f", "uri": "runs/storage/datasets/digits/04ff5e37be5f"},
        "run_name": "digits-04ff5e37be5f-9753343c",
        "run_id": "abc",
        "model_uri": "runs:/abc/generator",
        "model_name": "digits-generator",
        "version": "1",
        "metrics": {"frechet_distance": {"value": 0.2, "ci_low": 0.18, "ci_high": 0.25, "real": 0.7}},
        "decision": decision,
        "search": None,
        "outputs": {"report": "runs/pipelines/digits/report.md"},
        **more,
    }


def test_a_re_run_reports_the_figures_its_champion_was_promoted_on_and_the_search_values_it_used():
    """It said "Version 1 not promoted: already the champion", and a run without a search showed none."""
    decision = {
        "promoted": False,
        "already_champion": True,
        "challenger": "1",
        "reason": "already the champion (promoted as the first champion: no champion yet; gates passed)",
        "difference": None,
        "gates": {"finite": True},
    }
    report = pipeline_report(_summary(decision, latest_search_values={"loss.r1_weight": 0.05}))
    assert "Version 1 is the champion: already the champion (promoted as the first champion" in report
    assert "none this run; training used the latest search's best values: `loss.r1_weight=0.05`" in report
