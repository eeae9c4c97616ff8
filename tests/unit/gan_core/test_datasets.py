import math

import pytest
import torch

from gan_core.data import DATASETS, load_dataset
from gan_core.data.mixtures import GRID_SIGMA, RING_SIGMA


def test_ring_protocol():
    data = load_dataset("ring", n_train=1000)
    assert data.kind == "points" and data.train_x.shape == (1000, 2)
    assert data.modes.shape == (8, 2) and data.sigma == RING_SIGMA
    assert torch.allclose(data.modes.norm(dim=1), torch.ones(8))
    radii = data.train_x.norm(dim=1)
    assert (radii - 1).abs().max() < 6 * RING_SIGMA


def test_grid_protocol():
    data = load_dataset("grid", n_train=1000)
    assert data.modes.shape == (25, 2) and data.sigma == GRID_SIGMA
    assert sorted(set(data.modes[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]


def test_synthetic_sets_are_seeded():
    a, b = load_dataset("ring", n_train=500, seed=3), load_dataset("ring", n_train=500, seed=3)
    assert torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.train_x, load_dataset("ring", n_train=500, seed=4).train_x)


def test_digits_split_is_fixed_disjoint_and_scaled():
    data = load_dataset("digits")
    assert data.train_x.shape[1:] == (1, 8, 8)
    assert len(data.train_x) + len(data.test_x) == 1797
    assert data.train_x.min() == -1 and data.train_x.max() == 1
    assert set(data.train_y.tolist()) == set(range(10))
    again = load_dataset("digits")
    assert torch.equal(data.test_x, again.test_x)
    train_rows = {tuple(r) for r in data.train_x.flatten(1).tolist()}
    overlap = sum(tuple(r) in train_rows for r in data.test_x.flatten(1).tolist())
    assert overlap < 5  # the raw data holds a few duplicate images, no more


def test_stacked_digits_labels_match_their_channels():
    data = load_dataset("stacked-digits", n_train=500)
    assert data.train_x.shape == (500, 3, 8, 8) and data.num_classes == 1000
    source = data.source
    for i in range(5):
        label = int(data.train_y[i])
        for channel, digit in enumerate((label // 100, label // 10 % 10, label % 10)):
            image = data.train_x[i, channel]
            matches = (source.train_x[:, 0] == image).flatten(1).all(1)
            assert digit in source.train_y[matches].tolist()


def test_registry_lists_all_and_rejects_unknown():
    assert {"ring", "grid", "digits", "stacked-digits", "mnist", "fashion-mnist"} <= set(DATASETS.names())
    with pytest.raises(KeyError, match="unknown dataset 'cifar'; choose one of"):
        DATASETS.get("cifar")
    assert math.isclose(load_dataset("grid", n_train=200).sigma, 0.05)
