import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_core.data import load_dataset
from gan_core.data.idx import IdxFormatError, read_idx, write_idx


def _images(n: int = 12, size: int = 28) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size), dtype=np.uint8)


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_round_trip_raw_and_gzip(tmp_path: Path, name: str):
    array = _images()
    path = write_idx(tmp_path / name, array)
    assert np.array_equal(read_idx(path), array)


def test_big_endian_types_round_trip(tmp_path: Path):
    array = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "ints", array)), array)


def test_wrong_magic_number(tmp_path: Path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(IdxFormatError, match=rf"{path.name}.*wrong magic number"):
        read_idx(path)


def test_unknown_type_code(tmp_path: Path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(IdxFormatError, match="unknown IDX type code 0x07"):
        read_idx(path)


def test_truncated_body_and_header(tmp_path: Path):
    path = write_idx(tmp_path / "images", _images())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IdxFormatError, match=rf"{path.name}: truncated"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(IdxFormatError, match="truncated header"):
        read_idx(path)


def test_trailing_bytes(tmp_path: Path):
    path = write_idx(tmp_path / "images", _images())
    path.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(IdxFormatError, match="trailing bytes"):
        read_idx(path)


def test_corrupt_gzip(tmp_path: Path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x04abcd")[:-6])
    with pytest.raises(IdxFormatError, match=rf"{path.name}: corrupt gzip"):
        read_idx(path)


def _mnist_folder(tmp_path: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> Path:
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(1)
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", _images(n_train))
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_train).astype(np.uint8))
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", _images(n_test))
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_test).astype(np.uint8))
    return tmp_path


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_style_folder_loads_scaled(tmp_path: Path, name: str, gz: bool):
    dataset = load_dataset(name, root=str(_mnist_folder(tmp_path, gz=gz)))
    assert dataset.train_x.shape == (30, 1, 28, 28) and dataset.test_x.shape == (10, 1, 28, 28)
    assert dataset.train_x.min() >= -1 and dataset.train_x.max() <= 1
    assert dataset.num_classes == 10 and dataset.train_y.shape == (30,)


def test_mismatched_image_and_label_counts(tmp_path: Path):
    folder = _mnist_folder(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(29, dtype=np.uint8))
    # The labels file is named, as found (here .gz), beside the images it does not match.
    expected = rf"{folder}/train-labels-idx1-ubyte.gz: 29 labels for the 30 images of {folder}/train-images-idx3"
    with pytest.raises(IdxFormatError, match=expected):
        load_dataset("mnist", root=str(folder))


def test_labels_out_of_range(tmp_path: Path):
    folder = _mnist_folder(tmp_path)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, dtype=np.uint8))
    with pytest.raises(IdxFormatError, match=r"t10k-labels-idx1-ubyte.gz: labels must lie in 0\.\.9"):
        load_dataset("mnist", root=str(folder))


def test_an_empty_split_and_splits_of_two_sizes_are_refused(tmp_path: Path):
    """Both were loaded: an empty test split failed in the metrics after training ("Eigenvalues did
    not converge"), test images of another size were scored against the training size."""
    folder = _mnist_folder(tmp_path)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", _images(0))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(0, dtype=np.uint8))
    with pytest.raises(IdxFormatError, match=r"t10k-images-idx3-ubyte.gz: holds no images"):
        load_dataset("mnist", root=str(folder))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((10, 16, 16), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(10, dtype=np.uint8))
    with pytest.raises(IdxFormatError, match=r"t10k-images-idx3-ubyte.gz: images of 16x16, but the training images"):
        load_dataset("mnist", root=str(folder))


def test_missing_file_and_folder(tmp_path: Path):
    folder = _mnist_folder(tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(IdxFormatError, match="missing t10k-images-idx3-ubyte"):
        load_dataset("mnist", root=str(folder))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_dataset("mnist", root=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="needs data.root"):
        load_dataset("mnist")
    # A bucket's URI came out as a missing local folder named "s3:/bucket/mnist".
    with pytest.raises(ValueError, match=r"data.root s3://bucket/mnist is a URI.*ganpipe prepare mnist --root s3://"):
        load_dataset("mnist", root="s3://bucket/mnist")


def test_the_mnist_preset_trains_on_an_idx_folder_and_draws_each_class(tmp_path: Path):
    from gan_core.config import load_config, preset_path
    from gan_core.training import fit

    folder = _mnist_folder(tmp_path, n_train=40)
    config = load_config(preset_path("mnist-acgan"), [f"data.root={folder}", "train.steps=3", "train.batch_size=8"])
    state = fit(config, load_dataset(config.data.name, root=config.data.root))
    assert state.step == 3
    labels = torch.arange(10)
    images = state.generator.eval()(torch.randn(10, config.model.latent_dim), labels)
    assert images.shape == (10, 1, 28, 28) and torch.isfinite(images).all()
    out = state.discriminator(images, labels)
    assert out.class_logits.shape == (10, 10)  # AC-GAN's class head
