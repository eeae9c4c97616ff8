"""`ganpipe sample`: a generator's samples as a picture, the served model's for the same request."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import pipelines.flows.pipeline  # noqa: F401 - Prefect binds its log handlers at import (see test_cli.py)
from gan_core.config import load_config, preset_path
from gan_core.models import MODELS
from gan_core.pictures import caption_height
from pipelines.cli.main import main
from pipelines.storage.datasets import load_for
from pipelines.tracking.model import save_generator_model


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GANPIPE_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def served_cgan(tmp_path_factory) -> Path:
    """A conditional digits generator logged as the registry keeps it (untrained: the samples' values do not matter)."""
    config = load_config(preset_path("digits-cgan"))
    generator = MODELS.get(config.model.name)(config.model, (1, 8, 8), 10).generator
    return save_generator_model(generator, config, tmp_path_factory.mktemp("served") / "model")


def _trained(tmp_path: Path, preset: str) -> Path:
    args = ["train", "--local", "--preset", preset, "--out-root", str(tmp_path), "--name", preset,
            "--set", "train.steps=20", "--set", "train.sample_every=20"]  # fmt: skip
    assert main(args) == 0
    return tmp_path / preset


def test_a_class_drawn_here_is_what_the_served_model_returns(served_cgan: Path, tmp_path: Path, capsys):
    picture, arrays = tmp_path / "sevens.png", tmp_path / "sevens.npz"
    argv = ["sample", served_cgan.as_uri(), "--label", "7", "--count", "12", "--seed", "5", "--out", str(picture),
            "--arrays", str(arrays)]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == "12 images of class 7"
    drawn = np.load(arrays)
    request = pd.DataFrame({"count": [12], "seed": [5], "label": [7]})
    np.testing.assert_array_equal(drawn["samples"], mlflow.pyfunc.load_model(str(served_cgan)).predict(request))
    assert drawn["labels"].tolist() == [7] * 12
    tile = 8 * 16 + 1  # 4 columns of 8x8 tiles: 16 times reaches 512 px
    assert Image.open(picture).size == (4 * tile + 1, 3 * tile + 1 + caption_height())  # titled: model, seed


def test_cycling_classes_puts_one_class_in_each_column(served_cgan: Path, tmp_path: Path):
    arrays = tmp_path / "all.npz"
    assert main(["sample", served_cgan.as_uri(), "--out", str(tmp_path / "all.png"), "--arrays", str(arrays)]) == 0
    labels = np.load(arrays)["labels"]
    assert labels.tolist() == [i % 10 for i in range(70)]  # 64 rounded up to whole rows of 10
    tile = 8 * 7 + 1
    assert Image.open(tmp_path / "all.png").size == (10 * tile + 1, 7 * tile + 1 + caption_height())


def test_points_and_translations_from_run_folders(tmp_path: Path, capsys):
    ring = _trained(tmp_path, "ring")
    assert main(["sample", str(ring), "--out", str(tmp_path / "ring.png"), "--arrays", str(tmp_path / "ring.npz")]) == 0
    assert np.load(tmp_path / "ring.npz")["samples"].shape == (2500, 2)
    assert Image.open(tmp_path / "ring.png").size[0] > 300  # a scatter plot
    assert main(["sample", str(ring), "--label", "2", "--out", str(tmp_path / "x.png")]) == 2
    assert "label=2 is not allowed: this generator is unconditional" in capsys.readouterr().err

    toy = _trained(tmp_path, "discogan-toy")
    held_out = load_for(load_config(toy / "config.yaml")).test_x.numpy()  # the run's own data
    drawn = []
    for seed in (0, 1):
        arrays = tmp_path / f"toy-{seed}.npz"
        argv = ["sample", str(toy), "--count", "10", "--seed", str(seed), "--out", str(tmp_path / "toy.png"),
                "--arrays", str(arrays)]  # fmt: skip
        assert main(argv) == 0
        drawn.append(np.load(arrays))
    assert {key: value.shape for key, value in drawn[0].items()} == {
        k: (10, 2) for k in ("inputs", "translations", "round_trips")
    }
    assert all((held_out == row).all(1).any() for row in drawn[0]["inputs"])  # held-out samples of A
    assert not np.array_equal(drawn[0]["inputs"], drawn[1]["inputs"])  # the seed picks which


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--out", "x.txt"], "--out x.txt: a picture file is needed, ending in .png, .jpg, .jpeg, .webp"),
        (["--out", "missing/x.png"], "--out missing/x.png: folder missing does not exist"),
        (["--arrays", "x.npy"], "--arrays x.npy: the file name must end in .npz"),
        (["--count", "20000"], "--count 20000 is not allowed: 1..10000"),
        (["--label", "10"], "label=10 is not allowed: -1 (cycle) or 0..9"),
    ],
)
def test_bad_requests_are_refused_in_one_line(served_cgan: Path, argv, said, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", served_cgan.as_uri(), *argv]) == 2
    assert f"ganpipe sample: error: {said}" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
