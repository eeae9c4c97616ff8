"""Prepared dataset versions (gan_core side): validation, content versioning, shard integrity."""

import dataclasses
import json

import pytest
import torch

from gan_core.data import load_dataset
from gan_core.data.prepared import dataset_version, load_prepared, write_prepared
from gan_core.data.validation import DataValidationError, validate_dataset


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_a_version_folder_round_trips_exactly(digits, tmp_path):
    manifest = write_prepared(digits, tmp_path, origin={"source": "digits"})
    loaded = load_prepared(str(tmp_path))
    assert torch.equal(loaded.train_x, digits.train_x) and torch.equal(loaded.test_y, digits.test_y)
    assert (loaded.name, loaded.num_classes) == ("digits", 10)
    assert manifest["statistics"]["train"]["count"] == len(digits.train_x)
    assert sum(manifest["statistics"]["train"]["class_counts"]) == len(digits.train_x)


def test_mixtures_keep_their_modes_and_spread(tmp_path):
    ring = load_dataset("ring", n_train=1000)
    write_prepared(ring, tmp_path)
    loaded = load_prepared(str(tmp_path))
    assert torch.equal(loaded.modes, ring.modes) and loaded.sigma == ring.sigma and loaded.kind == "points"


def test_the_version_follows_the_content(digits):
    assert dataset_version(digits) == dataset_version(load_dataset("digits"))
    changed = dataclasses.replace(digits, train_x=digits.train_x.clone())
    changed.train_x[0, 0, 0, 0] = 0.5
    assert dataset_version(changed) != dataset_version(digits)
    assert dataset_version(load_dataset("ring", n_train=1000, seed=1)) != dataset_version(
        load_dataset("ring", n_train=1000, seed=2)
    )


def test_a_tampered_shard_is_refused(digits, tmp_path):
    write_prepared(digits, tmp_path)
    shard = next(tmp_path.glob("train-*.npz"))
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataValidationError, match="shard hash"):
        load_prepared(str(tmp_path))


def test_an_unknown_format_is_refused(digits, tmp_path):
    write_prepared(digits, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format": "other/9"}))
    with pytest.raises(DataValidationError, match="format"):
        load_prepared(str(tmp_path))


@pytest.mark.parametrize(
    ("damage", "check", "said"),
    [
        (lambda folder: (folder / "manifest.json").write_text("{not json"), "format", "not a JSON manifest"),
        (lambda folder: (folder / "manifest.json").write_text("[1, 2]"), "format", "got 'list'"),
        (lambda folder: _drop_key(folder, "shards"), "manifest keys", "without shards"),
        (lambda folder: next(folder.glob("test-*.npz")).unlink(), "shard", "missing: the manifest lists it"),
    ],
    ids=["not-json", "not-a-dict", "missing-key", "missing-shard"],
)
def test_a_damaged_version_folder_is_named_with_what_is_wrong(digits, tmp_path, damage, check, said):
    write_prepared(digits, tmp_path)
    damage(tmp_path)
    with pytest.raises(DataValidationError, match=f"failed the '{check}' check: .*{said}") as failure:
        load_prepared(str(tmp_path))
    assert failure.value.origin.startswith(str(tmp_path))


def _drop_key(folder, key: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest[key]
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_clean_data_passes_validation(digits):
    validate_dataset(digits, "digits")
    validate_dataset(load_dataset("ring", n_train=1000), "ring")


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda d: dataclasses.replace(d, train_x=_poke(d.train_x, float("nan"))), "finite"),
        (lambda d: dataclasses.replace(d, test_x=_poke(d.test_x, 3.0)), "value range"),
        (lambda d: dataclasses.replace(d, train_y=_poke(d.train_y, 11)), "label range"),
        (lambda d: dataclasses.replace(d, test_y=d.test_y[:-1]), "counts"),
        (lambda d: dataclasses.replace(d, train_x=d.train_x.double()), "dtype"),
        (lambda d: dataclasses.replace(d, test_x=d.test_x[:, :, :4]), "shape"),
        (lambda d: dataclasses.replace(d, train_x=d.train_x[:50], train_y=d.train_y[:50]), "counts"),
    ],
)
def test_bad_data_fails_the_named_check(digits, change, check):
    with pytest.raises(DataValidationError, match=f"failed the '{check}' check") as failure:
        validate_dataset(change(digits), "/data/digits.npz")
    assert failure.value.origin.startswith("/data/digits.npz") and failure.value.check == check


def _poke(tensor: torch.Tensor, value) -> torch.Tensor:
    poked = tensor.clone()
    poked.view(-1)[7] = value
    return poked
