"""`ganpipe prepare fashion-mnist` without services: read Debian's files, validate, store a version.

Skips where Debian's `dataset-fashion-mnist` is not installed (`apt-get install -y dataset-fashion-mnist`).
"""

import pytest
import torch

from gan_core.config import load_config, preset_path
from gan_core.data.images import FASHION_MNIST_CLASSES, FASHION_MNIST_FOLDER
from gan_core.data.prepared import load_prepared
from gan_core.data.validation import validate_dataset
from pipelines.storage.datasets import NEEDS_ROOT, class_names_for, publish, read_source
from pipelines.storage.location import Storage

needs_files = pytest.mark.skipif(
    not FASHION_MNIST_FOLDER.is_dir(),
    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_FOLDER} (apt-get install -y dataset-fashion-mnist)",
)


@needs_files
def test_without_a_root_the_debian_files_become_a_version_with_class_names(tmp_path):
    dataset, origin = read_source("fashion-mnist", "", 100_000, 0, tmp_path / "scratch")
    assert origin["root"] == str(FASHION_MNIST_FOLDER)  # the manifest says where the files came from
    validate_dataset(dataset, origin["root"])
    storage = Storage.from_uri(str(tmp_path / "storage"))
    version = publish(dataset, storage, origin)
    assert not version.reused and version.uri.endswith(f"datasets/fashion-mnist/{version.version}")
    assert version.manifest["class_names"] == list(FASHION_MNIST_CLASSES)
    assert version.manifest["statistics"]["train"]["class_counts"] == [6000] * 10

    stored = load_prepared(version.uri)
    assert stored.class_names == FASHION_MNIST_CLASSES and stored.name == "fashion-mnist"
    assert torch.equal(stored.test_x, dataset.test_x) and torch.equal(stored.train_y, dataset.train_y)
    config = load_config(preset_path("mnist-acgan"), version.overrides())
    assert class_names_for(config)[7] == "sneaker"  # read from the manifest, no arrays loaded


def test_fashion_mnist_needs_no_root_and_mnist_does():
    assert NEEDS_ROOT == ("mnist",)
