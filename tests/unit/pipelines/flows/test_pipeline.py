"""gan-pipeline's bookkeeping: a search is reused only for the same base config and options."""

from gan_core.config import load_config, preset_path
from pipelines.flows.pipeline import _search_key, _search_options
from pipelines.tune.space import apply_overrides


def _base(preset: str, steps: int):
    return apply_overrides(load_config(preset_path(preset)), {"train.steps": steps})


def test_a_pipeline_reuses_a_search_only_for_the_same_base_and_options():
    """Its search was recorded by pipeline name and data version alone: a re-run with another preset
    applied the old preset's winning values to the new one."""
    ring = _base("ring", 600)
    options = _search_options("ring", 4, "asha")
    assert _search_key(ring, options) == _search_key(_base("ring", 600), _search_options("ring", 4, "asha"))
    assert _search_key(_base("ring-hq", 600), options) != _search_key(ring, options)
    assert _search_key(_base("ring", 300), options) != _search_key(ring, options)
    assert _search_key(ring, _search_options("ring", 4, "pbt")) != _search_key(ring, options)
