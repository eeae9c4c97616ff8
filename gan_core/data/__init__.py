"""Datasets, by name: ``DATASETS[name](n_train=..., seed=..., root=...)`` returns a Dataset."""

from __future__ import annotations

from collections.abc import Callable

from gan_core.data.dataset import Dataset
from gan_core.data.images import load_digits, load_fashion_mnist, load_mnist, load_stacked_digits
from gan_core.data.mixtures import load_grid, load_ring
from gan_core.data.pairs import PAIRED_LOADERS
from gan_core.data.prepared import load_prepared
from gan_core.registry import Registry

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")
DATASETS.register("ring")(load_ring)
DATASETS.register("grid")(load_grid)
DATASETS.register("digits")(load_digits)
DATASETS.register("stacked-digits")(load_stacked_digits)
DATASETS.register("mnist")(load_mnist)
DATASETS.register("fashion-mnist")(load_fashion_mnist)
DATASETS.register("prepared")(load_prepared)  # a version folder written by the prepare flow (data.root)
for _name, _loader in PAIRED_LOADERS.items():
    DATASETS.register(_name)(_loader)

# Two-domain datasets (A and B, unpaired): only translation models train on them.
TRANSLATION_DATASETS = frozenset(PAIRED_LOADERS)


def load_dataset(name: str, root: str = "", n_train: int = 100_000, seed: int = 0) -> Dataset:
    return DATASETS.get(name)(root=root, n_train=n_train, seed=seed)


__all__ = ["DATASETS", "TRANSLATION_DATASETS", "Dataset", "load_dataset"]
