"""The quality benchmark (bench/quality.py, `ganpipe bench quality`) and its presets."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from gan_core.config import load_config, preset_path
from pipelines.benchmarks import quality
from pipelines.benchmarks.quality import QualityOptions
from pipelines.tune.space import load_space

# What may differ between a benchmark preset and its search space's base preset beyond the
# space's own keys: the step budget and how often training reports.
SCHEDULE_KEYS = {"train.steps", "train.log_every", "train.checkpoint_every", "train.sample_every"}


@pytest.mark.parametrize("space, base, preset", [("ring", "ring", "ring-hq"), ("grid", "grid", "grid-hq")])
def test_benchmark_preset_is_a_point_of_its_search_space(space, base, preset):
    base_config = load_config(preset_path(base))
    tuned = load_config(preset_path(preset)).flat()
    dimensions = {d.key: d for d in load_space(space, base_config)}
    for key, value in base_config.flat().items():
        if tuned[key] != value:
            assert key in dimensions or key in SCHEDULE_KEYS, f"{preset} changes {key}, which {space} cannot reach"
    for key, dimension in dimensions.items():
        if dimension.kind in ("choice", "grid"):
            assert tuned[key] in dimension.args, f"{preset}: {key}={tuned[key]} is not among {dimension.args}"
        else:
            low, high = dimension.args
            assert low <= tuned[key] < high or (dimension.kind != "randint" and tuned[key] == high), key


@pytest.mark.parametrize("preset", sorted(quality.ABLATIONS))
def test_ablation_ladder_climbs_to_its_preset(preset):
    """Each rung's overrides load (so every key exists), each rung changes the config, and the
    rung labelled as the preset is the preset exactly."""
    rungs = quality.ABLATIONS[preset]
    configs = [load_config(preset_path(preset), overrides).flat() for _, overrides in rungs]
    assert all(a != b for a, b in zip(configs, configs[1:], strict=False))
    named = [config for (label, _), config in zip(rungs, configs, strict=True) if label.endswith("= the preset")]
    assert named == [load_config(preset_path(preset)).flat()]


def test_target_needs_every_figure():
    target = quality.Target(modes=8, high_quality=0.98, kl=0.02)
    assert target.met({"modes": 8.0, "high_quality": 0.981, "kl": 0.01})
    assert not target.met({"modes": 7.0, "high_quality": 0.99, "kl": 0.01})
    assert not target.met({"modes": 8.0, "high_quality": 0.97, "kl": 0.01})
    assert not target.met({"modes": 8.0, "high_quality": 0.99, "kl": 0.03})
    assert quality.Target(modes=1000, high_quality=None, kl=0.05).met({"modes": 1000.0, "kl": 0.04})


def test_mean_and_standard_error():
    mean, se = quality.mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx((1.0 / 3.0) ** 0.5)
    assert quality.mean_se([5.0])[1] != quality.mean_se([5.0])[1]  # one seed: no error bar (NaN)


def test_quick_ring_run_prints_seeds_published_rows_and_json(capsys, tmp_path):
    jsonl = tmp_path / "runs.jsonl"
    pictures = tmp_path / "pictures"
    args = QualityOptions(benches=("ring",), seeds=2, steps=60, jobs=1, jsonl=str(jsonl), pictures=str(pictures))
    assert quality.run(args, log=lambda line: None) == 0
    out = capsys.readouterr().out
    assert "ring-hq seed 0" in out and "ring-hq seed 1" in out
    assert "PacGAN3 (PacGAN T1), published | 7.8 | 97.7 | 0.10" in out
    # ring-hq truncates its latents: the generator's own draws are reported beside them.
    assert "| high-quality % untruncated | KL untruncated |" in out
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    runs, summary = lines[:2], lines[2]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == 60 for r in runs)
    assert all(0 <= r["high_quality_untruncated"] <= 1 and r["kl_untruncated"] >= 0 for r in runs)
    assert summary["runs"] == 2 and 0 <= summary["modes_mean"] <= 8
    assert summary["modes_mean"] == pytest.approx(sum(r["modes"] for r in runs) / 2, abs=1e-4)
    assert summary["target_met_every_seed"] is False  # 60 steps cannot reach 98% high quality
    # One picture per run: the truncated samples beside the untruncated ones.
    names = sorted(p.name for p in pictures.iterdir())
    assert names == ["ring-ring-hq-seed0.png", "ring-ring-hq-seed1.png"]
    with Image.open(pictures / names[0]) as picture:
        assert picture.width > 1.8 * picture.height


def test_first_seed_adds_seeds_and_each_run_shows_progress(capsys, tmp_path):
    jsonl = tmp_path / "runs.jsonl"
    args = QualityOptions(benches=("ring",), seeds=1, first_seed=3, steps=20, jobs=1, jsonl=str(jsonl))
    assert quality.run(args, log=lambda line: None) == 0
    captured = capsys.readouterr()
    assert "ring-hq seed 3" in captured.out
    # Progress every tenth of the run, named by benchmark and seed (a stacked run takes an hour).
    assert "ring ring-hq seed 3: step 2/20 ( 10%)" in captured.err
    assert "ring ring-hq seed 3: step 20/20 (100%)" in captured.err
    strict = lambda text: json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))  # noqa: E731
    run, summary = [strict(line) for line in jsonl.read_text().splitlines()]
    assert run["seed"] == 3 and summary["runs"] == 1
    assert summary["modes_se"] is None  # one seed has no standard error; it was printed as NaN


def test_a_preset_of_another_dataset_is_refused_before_training():
    args = QualityOptions(benches=("ring",), preset="digits-dcgan", jobs=1)
    with pytest.raises(ValueError, match="--preset digits-dcgan trains on digits; benchmark ring measures ring"):
        quality.run(args, log=lambda line: pytest.fail(f"trained: {line}"))
