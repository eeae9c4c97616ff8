"""Checks a dataset must pass before anything trains on it or stores it.

Each failure names where the data came from and which check failed, so that a person can
fix the file instead of reading a stack trace from deep inside training.
"""

from __future__ import annotations

import torch

from gan_core.data.dataset import Dataset

MIN_TRAIN = 100
MIN_TEST = 10
RANGE_TOLERANCE = 1e-4  # float rounding of the [-1, 1] scaling


class DataValidationError(ValueError):
    """The data is unusable; retrying will not help. The message names the origin and the check."""

    def __init__(self, origin: str, check: str, detail: str) -> None:
        super().__init__(f"{origin}: failed the {check!r} check: {detail}")
        self.origin, self.check = origin, check


def validate_dataset(dataset: Dataset, origin: str) -> None:
    """Raise DataValidationError on the first problem found; return quietly when all is well."""
    _check_class_names(dataset, origin)  # first: it reads no samples
    for part, x, y in (("train", dataset.train_x, dataset.train_y), ("test", dataset.test_x, dataset.test_y)):
        where = f"{origin} ({part} split)"
        _check_shape(dataset, x, where)
        _check_values(x, where)
        _check_labels(dataset, x, y, where)
    _check_counts(dataset, origin)


def _check_shape(dataset: Dataset, x: torch.Tensor, where: str) -> None:
    if x.dtype != torch.float32:
        raise DataValidationError(where, "dtype", f"samples must be float32, got {x.dtype}")
    if dataset.kind == "points" and (x.dim() != 2 or x.shape[1] != 2):
        raise DataValidationError(where, "shape", f"2-D points must be (N, 2), got {list(x.shape)}")
    square = x.dim() == 4 and x.shape[1] in (1, 3) and x.shape[2] == x.shape[3] and x.shape[2] >= 8
    if dataset.kind == "images" and not square:
        raise DataValidationError(where, "shape", f"images must be (N, 1 or 3, H, H) with H >= 8, got {list(x.shape)}")
    if tuple(x.shape[1:]) != dataset.sample_shape:
        expected = list(dataset.sample_shape)
        raise DataValidationError(where, "shape", f"sample shape {list(x.shape[1:])} differs from train {expected}")


def _check_values(x: torch.Tensor, where: str) -> None:
    bad = ~torch.isfinite(x)
    if bad.any():
        first = int(bad.flatten(1).any(dim=1).nonzero()[0])
        raise DataValidationError(where, "finite", f"{int(bad.sum())} NaN/inf values (first in sample {first})")
    if x.numel() and x.dim() == 4:  # images are scaled to a tanh generator's range
        low, high = float(x.min()), float(x.max())
        if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
            raise DataValidationError(where, "value range", f"images must lie in [-1, 1], found {low:.4g}..{high:.4g}")


def _check_labels(dataset: Dataset, x: torch.Tensor, y: torch.Tensor | None, where: str) -> None:
    if y is None:
        return
    if y.dtype != torch.int64 or y.dim() != 1:
        raise DataValidationError(where, "labels", f"labels must be int64 of shape (N,), got {y.dtype} {list(y.shape)}")
    if len(y) != len(x):
        raise DataValidationError(where, "counts", f"{len(x)} samples but {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= dataset.num_classes):
        found = f"{int(y.min())}..{int(y.max())}"
        raise DataValidationError(
            where, "label range", f"labels must lie in 0..{dataset.num_classes - 1}, found {found}"
        )


def _check_counts(dataset: Dataset, origin: str) -> None:
    n_train, n_test = len(dataset.train_x), len(dataset.test_x)
    if n_train < MIN_TRAIN or n_test < MIN_TEST:
        raise DataValidationError(
            origin, "counts", f"need >= {MIN_TRAIN} train and >= {MIN_TEST} test samples, got {n_train} and {n_test}"
        )
    if dataset.labelled and dataset.digit_classes == 0:
        missing = sorted(set(range(dataset.num_classes)) - set(dataset.train_y.unique().tolist()))
        if missing:
            raise DataValidationError(origin, "class coverage", f"classes {missing} have no training sample")


def _check_class_names(dataset: Dataset, origin: str) -> None:
    """Names, where given, are one per class: a short list would name some classes wrongly in pictures."""
    names = dataset.class_names
    if names and (len(names) != dataset.num_classes or len(set(names)) != len(names)):
        raise DataValidationError(
            origin, "class names", f"need {dataset.num_classes} distinct names, one per class, got {list(names)}"
        )
