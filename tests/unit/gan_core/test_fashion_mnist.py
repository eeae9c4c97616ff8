"""Fashion-MNIST on its real files, where Debian's `dataset-fashion-mnist` put them.

The tests that read the files skip where the package is not installed (`apt-get install -y
dataset-fashion-mnist`); the reader's own checks run on files the tests write (test_idx.py).
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from gan_core.data import images, load_dataset
from gan_core.data.idx import read_idx, write_idx
from gan_core.data.images import FASHION_MNIST_CLASSES, FASHION_MNIST_FOLDER, IDX_FILES
from gan_core.data.validation import DataValidationError, validate_dataset
from gan_core.pictures import render_samples

needs_files = pytest.mark.skipif(
    not FASHION_MNIST_FOLDER.is_dir(),
    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_FOLDER} (apt-get install -y dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist")  # no root: Debian's folder


@needs_files
def test_the_gzipped_debian_files_read_as_fashion_mnist(fashion):
    raw = read_idx(FASHION_MNIST_FOLDER / "train-images-idx3-ubyte.gz")
    assert raw.dtype == np.uint8 and raw.shape == (60_000, 28, 28)
    assert fashion.train_x.shape == (60_000, 1, 28, 28) and fashion.test_x.shape == (10_000, 1, 28, 28)
    assert float(fashion.train_x.min()) == -1 and float(fashion.train_x.max()) == 1
    assert torch.equal(fashion.train_x[0, 0], torch.from_numpy(raw[0]).float() / 255 * 2 - 1)
    # Balanced by construction: 6,000 training and 1,000 test images of each class.
    assert torch.bincount(fashion.train_y).tolist() == [6000] * 10
    assert torch.bincount(fashion.test_y).tolist() == [1000] * 10


@needs_files
def test_classes_travel_with_the_dataset_by_name(fashion):
    assert fashion.class_names == FASHION_MNIST_CLASSES and fashion.num_classes == 10
    assert fashion.class_name(7) == "sneaker" and fashion.class_name(0) == "T-shirt/top"
    assert fashion.summary()["class_names"][9] == "ankle boot"
    assert load_dataset("digits").class_name(7) == "7"  # a digit's label is its name


@needs_files
def test_the_real_files_pass_validation_and_bad_names_do_not(fashion):
    validate_dataset(fashion, str(FASHION_MNIST_FOLDER))
    short = dataclasses.replace(fashion, class_names=FASHION_MNIST_CLASSES[:9])
    with pytest.raises(DataValidationError, match=r"failed the 'class names' check: need 10 distinct names"):
        validate_dataset(short, "fashion")


@needs_files
def test_a_picture_names_its_columns(fashion):
    columns = torch.cat([torch.nonzero(fashion.test_y == c)[:2, 0] for c in range(10)]).view(10, 2).T.flatten()
    named = render_samples(fashion.test_x[columns], columns=10, class_names=fashion.class_names)
    plain = render_samples(fashion.test_x[columns], columns=10)
    assert named.width == plain.width and named.height > plain.height + 40  # "ankle boot", written upwards
    header = np.asarray(named)[: named.height - plain.height]
    assert (header > 200).any(axis=2).any(axis=0)[: plain.width // 10].any()  # the first column has a name


@needs_files
def test_the_classifier_mirrors_reads_every_pixel_and_is_cached_under_its_recipe(fashion, tmp_path):
    from gan_core.metrics.classifier import classifier_key, load_or_train_classifier

    budget = 12_800  # 0.2 epochs: the full budget is timed by bench/classifier.py, not here
    model, accuracy = load_or_train_classifier(fashion, tmp_path, max_images=budget)
    assert model.features[0].stride == (1, 1) and model.features[3].stride == (2, 2)  # stem, second block
    assert accuracy >= 0.75, accuracy
    key = classifier_key(fashion, 40, 0, budget)
    assert (tmp_path / f"classifier-{key}.pt").is_file()
    assert load_or_train_classifier(fashion, tmp_path, max_images=budget)[1] == accuracy  # read back, same shape
    plain = dataclasses.replace(fashion, name="fashion-copy")  # same images, the default recipe
    assert classifier_key(plain, 40, 0, budget).split("-")[-1] != key.split("-")[-1]


def _written_folder(folder, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for key, array in arrays.items():
        write_idx(folder / f"{IDX_FILES[key]}.gz", array)
    return folder


def test_data_root_comes_first(tmp_path):
    dataset = load_dataset("fashion-mnist", root=str(_written_folder(tmp_path)))
    assert len(dataset.train_x) == 30 and dataset.class_names == FASHION_MNIST_CLASSES


def test_without_files_one_line_says_where_it_looked_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "FASHION_MNIST_FOLDER", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError) as empty_root:
        load_dataset("fashion-mnist")
    message = str(empty_root.value)
    assert "\n" not in message
    assert f"no IDX files in {tmp_path / 'not-installed'} (data.root is empty)" in message
    assert "`apt-get install -y dataset-fashion-mnist`" in message and "train-images-idx3-ubyte" in message
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "nowhere"):
        with pytest.raises(FileNotFoundError, match=rf"no IDX files in data.root {root}; install them with"):
            load_dataset("fashion-mnist", root=str(root))


def test_a_folder_missing_one_file_names_that_file(tmp_path):
    folder = _written_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("fashion-mnist", root=str(folder))


@needs_files
@pytest.mark.slow
def test_dcgan_on_fashion_mnist_lowers_frechet_distance_five_fold(fashion, classifier_cache):
    from gan_core.config import load_config, preset_path
    from gan_core.metrics import Evaluator
    from gan_core.training import fit

    overrides = [
        "data.name=fashion-mnist",
        "model.conditioning=none",
        "train.steps=400",
        "eval.classifier_images=32000",  # a lighter classifier: its features still tell clothes from noise
    ]
    config = load_config(preset_path("mnist-acgan"), overrides)
    evaluator = Evaluator(fashion, config.eval, cache_dir=classifier_cache)
    untrained_state = fit(load_config(preset_path("mnist-acgan"), [*overrides, "train.steps=1"]), fashion)
    untrained = evaluator.evaluate(untrained_state.generator)
    report = evaluator.evaluate(fit(config, fashion).sampler)
    before, after = untrained["frechet_distance"]["value"], report["frechet_distance"]["value"]
    assert after * 5 <= before, (before, after)
    assert math.isfinite(report["frechet_distance"]["real"])  # real data's value, at the same sample count
