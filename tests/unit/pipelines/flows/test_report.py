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


def test_a_run_that_lost_modes_late_says_so_above_its_figures():
    decision = {"promoted": True, "challenger": "1", "reason": "no champion yet; gates passed", "gates": {}}
    fell = "coverage fell from 1.00 at step 1200 to 0.70 at step 3000 and ended there"
    report = pipeline_report(_summary(decision, late_collapse=fell))
    warning = f"**Warning: mode collapse late in training: {fell}.**"
    assert warning in report and report.index(warning) < report.index("## Evaluation")
    assert "mode collapse" not in pipeline_report(_summary(decision, late_collapse=None))
