"""Labelled image datasets: scikit-learn's 8x8 digits, stacked digits, MNIST-style IDX folders.

Fashion-MNIST needs no data.root where Debian's `dataset-fashion-mnist` package is installed:
its files are read from the package's folder. MNIST has no such package, so it needs data.root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan_core.data.dataset import Dataset, scale_to_unit_range, split
from gan_core.data.idx import IdxFormatError, read_idx

DIGITS_TEST_FRACTION = 0.2
STACK = 3  # stacked digits: one digit per channel, 10**3 modes
STACKED_PROTOCOL_SAMPLES = 26_000  # samples per evaluation in the Stacked-MNIST protocol (PacGAN Table 2)

# The four files of an MNIST-style folder; each may also end in .gz.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Debian's `dataset-fashion-mnist` installs the four files, gzipped, here.
FASHION_MNIST_FOLDER = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
# Label i of Fashion-MNIST is FASHION_MNIST_CLASSES[i] (Xiao et al. 2017, Table 1).
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
# Names of the classes, by dataset; a dataset not here numbers its classes (the digits' label is its name).
CLASS_NAMES = {"fashion-mnist": FASHION_MNIST_CLASSES}
# Where an IDX dataset is read when data.root is empty; a dataset missing here needs data.root.
DEFAULT_FOLDERS = {"fashion-mnist": FASHION_MNIST_FOLDER}


def _sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32)).unsqueeze(1)  # (1797, 1, 8, 8), 0..16
    return scale_to_unit_range(images, 16.0), torch.from_numpy(bunch.target.astype(np.int64))


def load_digits(seed: int = 0, **_: object) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), fixed 80/20 split."""
    x, y = _sklearn_digits()
    train, test = split(len(x), DIGITS_TEST_FRACTION, seed)
    return Dataset("digits", "images", x[train], x[test], y[train], y[test], num_classes=10)


def load_stacked_digits(n_train: int = 100_000, seed: int = 0, **_: object) -> Dataset:
    """Stacked digits: three 8x8 digits as three channels, 1000 modes (Stacked-MNIST protocol)."""
    digits = load_digits(seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    train_x, train_y = _stack(digits.train_x, digits.train_y, n_train, gen)
    test_x, test_y = _stack(digits.test_x, digits.test_y, STACKED_PROTOCOL_SAMPLES, gen)
    return Dataset(
        "stacked-digits",
        "images",
        train_x,
        test_x,
        train_y,
        test_y,
        num_classes=10**STACK,
        digit_classes=10,
        source=digits,
    )


def _stack(x: torch.Tensor, y: torch.Tensor, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    picks = torch.randint(len(x), (n, STACK), generator=gen)
    images = x[picks].squeeze(2)  # (n, 3, 8, 8)
    labels = (y[picks] * torch.tensor([100, 10, 1])).sum(dim=1)
    return images, labels


def load_idx_folder(name: str, root: str | Path, class_names: tuple[str, ...] = ()) -> Dataset:
    """An MNIST-style folder: the four standard IDX files, raw or gzip."""
    if not str(root):
        raise ValueError(f"dataset {name!r} needs data.root: a folder holding {sorted(IDX_FILES.values())}")
    if "://" in str(root):  # gan_core reads local files only; the pipeline fetches stored versions
        raise ValueError(
            f"data.root {root} is a URI, and dataset {name!r} reads a local folder: store the files as a dataset "
            f"version with `ganpipe prepare {name} --root {root}`, then train with data.name=prepared and "
            "data.root=<the version URI it prints>"
        )
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"data.root {folder} is not a folder (dataset {name!r})")
    paths = {key: _find(folder, stem) for key, stem in IDX_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for part in ("train", "test"):
        images, labels = f"{part}_images", f"{part}_labels"
        _check_images(paths[images], arrays[images])
        _check_labels(paths[labels], arrays[labels], paths[images], arrays[images])
    train_size, test_size = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train_size != test_size:
        raise IdxFormatError(
            f"{paths['test_images']}: images of {test_size[0]}x{test_size[1]}, but the training images in "
            f"{paths['train_images']} are {train_size[0]}x{train_size[1]}; both splits need one size"
        )
    to_x = lambda a: scale_to_unit_range(torch.from_numpy(a.astype(np.float32)).unsqueeze(1), 255.0)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return Dataset(
        name,
        "images",
        to_x(arrays["train_images"]),
        to_x(arrays["test_images"]),
        to_y(arrays["train_labels"]),
        to_y(arrays["test_labels"]),
        num_classes=10,
        class_names=class_names,
    )


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise IdxFormatError(f"{folder}: missing {stem} (or {stem}.gz)")


def _check_images(path: Path, images: np.ndarray) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxFormatError(
            f"{path}: expected uint8 images of shape (N, H, W), got {images.dtype} {list(images.shape)}"
        )
    if images.shape[1] != images.shape[2]:
        raise IdxFormatError(f"{path}: images must be square, got {images.shape[1]}x{images.shape[2]}")
    if len(images) == 0:  # an empty split trained a classifier on nothing, or failed in the metrics
        raise IdxFormatError(f"{path}: holds no images")


def _check_labels(path: Path, labels: np.ndarray, images_path: Path, images: np.ndarray) -> None:
    if labels.ndim != 1:
        raise IdxFormatError(f"{path}: labels must be one-dimensional, got shape {list(labels.shape)}")
    if len(images) != len(labels):
        raise IdxFormatError(f"{path}: {len(labels)} labels for the {len(images)} images of {images_path}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise IdxFormatError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")


def load_mnist(root: str = "", **_: object) -> Dataset:
    """MNIST from a folder of IDX files (28x28, 10 classes)."""
    return load_idx_folder("mnist", root)


def load_fashion_mnist(root: str = "", **_: object) -> Dataset:
    """Fashion-MNIST (28x28, 10 named classes) from data.root, else from Debian's package folder."""
    return load_idx_folder("fashion-mnist", fashion_mnist_folder(root), FASHION_MNIST_CLASSES)


def fashion_mnist_folder(root: str | Path = "") -> str:
    """The folder Fashion-MNIST is read from: `root` when given, else the Debian package's.

    When the folder chosen holds none of the four files, one line says where it looked and how to
    get them; a folder holding some of them is read, so that the missing one is named.
    """
    if "://" in str(root):  # load_idx_folder explains what to do with a URI
        return str(root)
    folder = Path(root) if root else FASHION_MNIST_FOLDER
    if not any(_present(folder, stem) for stem in IDX_FILES.values()):
        where = f"data.root {folder}" if str(root) else f"{folder} (data.root is empty)"
        raise FileNotFoundError(
            f"dataset 'fashion-mnist': no IDX files in {where}; install them with "
            f"`apt-get install -y {FASHION_MNIST_PACKAGE}` (into {FASHION_MNIST_FOLDER}), or set data.root to "
            f"a folder holding {', '.join(IDX_FILES.values())} (each may end in .gz)"
        )
    return str(folder)


def _present(folder: Path, stem: str) -> bool:
    return (folder / stem).is_file() or (folder / f"{stem}.gz").is_file()
