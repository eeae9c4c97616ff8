"""A prepared dataset: scaled, split and validated once, stored as shards plus a manifest.

Layout of a version folder::

    manifest.json          name, kind, classes, modes, statistics, shard list, content hash
    train-00000.npz ...    x (float32) and, when labelled, y (int64); SHARD_SIZE samples each
    test-00000.npz ...

The version is a prefix of the content hash, which covers the arrays and everything the
metrics read (classes, modes, spread), so the same input always gives the same version and
any change gives a new one. The manifest is written last: a folder without one is unfinished.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_core.data.dataset import Dataset
from gan_core.data.validation import DataValidationError

FORMAT = "ganpipe-dataset/1"
MANIFEST = "manifest.json"
# What load_prepared reads of a manifest (class_names is optional: versions made before it).
MANIFEST_KEYS = frozenset({"name", "kind", "num_classes", "modes", "sigma", "shards", "content_hash"})
SHARD_SIZE = 50_000
VERSION_LENGTH = 12


def content_hash(dataset: Dataset) -> str:
    digest = hashlib.sha256(json.dumps(_identity(dataset), sort_keys=True).encode())
    domains = [dataset] if dataset.target is None else [dataset, dataset.target]
    for domain in domains:
        for tensor in (domain.train_x, domain.train_y, domain.test_x, domain.test_y):
            if tensor is not None:
                digest.update(np.ascontiguousarray(tensor.numpy()).tobytes())
    return digest.hexdigest()


def dataset_version(dataset: Dataset) -> str:
    return content_hash(dataset)[:VERSION_LENGTH]


def encode_shards(dataset: Dataset) -> dict[str, bytes]:
    """File name -> bytes of every shard (in memory: the caller decides where they go)."""
    files: dict[str, bytes] = {}
    for part, x, y in (("train", dataset.train_x, dataset.train_y), ("test", dataset.test_x, dataset.test_y)):
        for index, start in enumerate(range(0, max(len(x), 1), SHARD_SIZE)):
            arrays = {"x": x[start : start + SHARD_SIZE].numpy()}
            if y is not None:
                arrays["y"] = y[start : start + SHARD_SIZE].numpy()
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)  # uncompressed: floats barely compress, and loading stays fast
            files[f"{part}-{index:05d}.npz"] = buffer.getvalue()
    return files


def build_manifest(dataset: Dataset, shards: dict[str, bytes], origin: dict[str, Any]) -> dict[str, Any]:
    if dataset.source is not None or dataset.target is not None:  # a version folder holds one set of samples
        raise ValueError(
            f"dataset {dataset.name!r} is built from another one at load time (stacked or two-domain); "
            "prepare the single-domain source instead"
        )
    digest = content_hash(dataset)
    return {
        "format": FORMAT,
        "version": digest[:VERSION_LENGTH],
        "content_hash": digest,
        **_identity(dataset),
        "origin": origin,
        "statistics": {"train": _statistics(dataset, "train"), "test": _statistics(dataset, "test")},
        "shards": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(shards.items())},
    }


def write_prepared(dataset: Dataset, folder: str | Path, origin: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a version folder; returns its manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shards = encode_shards(dataset)
    for name, data in shards.items():
        (folder / name).write_bytes(data)
    manifest = build_manifest(dataset, shards, origin or {})
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def load_prepared(root: str = "", **_: object) -> Dataset:
    """Read a version folder written by write_prepared, checking every shard against the manifest."""
    folder = Path(root)
    manifest_path = folder / MANIFEST
    if not str(root) or not manifest_path.is_file():
        raise FileNotFoundError(f"data.root {root!r} is not a prepared dataset folder (no {MANIFEST})")
    manifest = _read_manifest(manifest_path)
    parts = {part: _read_part(folder, manifest, part) for part in ("train", "test")}
    dataset = Dataset(
        name=manifest["name"],
        kind=manifest["kind"],
        train_x=parts["train"][0],
        test_x=parts["test"][0],
        train_y=parts["train"][1],
        test_y=parts["test"][1],
        num_classes=manifest["num_classes"],
        modes=torch.tensor(manifest["modes"]) if manifest["modes"] is not None else None,
        sigma=manifest["sigma"],
        class_names=tuple(manifest.get("class_names", ())),
    )
    if content_hash(dataset) != manifest["content_hash"]:
        raise DataValidationError(str(folder), "content hash", "the shards do not match the manifest's hash")
    return dataset


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, checked before anything in it is used: JSON, our format, every key there."""
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataValidationError(str(path), "format", f"not a JSON manifest ({error})") from None
    found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
    if found != FORMAT:
        raise DataValidationError(str(path), "format", f"expected {FORMAT}, got {found!r}")
    missing = sorted(MANIFEST_KEYS - set(manifest))
    if missing:
        raise DataValidationError(str(path), "manifest keys", f"{FORMAT} without {', '.join(missing)}")
    return manifest


def _read_part(folder: Path, manifest: dict[str, Any], part: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    xs, ys = [], []
    for name, expected in manifest["shards"].items():
        if not name.startswith(f"{part}-"):
            continue
        try:
            data = (folder / name).read_bytes()
        except FileNotFoundError:
            raise DataValidationError(str(folder / name), "shard", "missing: the manifest lists it") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise DataValidationError(str(folder / name), "shard hash", "contents differ from the manifest")
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            xs.append(torch.from_numpy(arrays["x"].copy()))
            if "y" in arrays:
                ys.append(torch.from_numpy(arrays["y"].copy()))
    return torch.cat(xs), (torch.cat(ys) if ys else None)


def _identity(dataset: Dataset) -> dict[str, Any]:
    """What, besides the arrays, defines the data: the metrics read all of it, the pictures and
    reports the class names. Unnamed classes add no key, so the versions stored before class
    names existed keep their hashes."""
    identity: dict[str, Any] = {
        "name": dataset.name,
        "kind": dataset.kind,
        "sample_shape": list(dataset.sample_shape),
        "num_classes": dataset.num_classes,
        "modes": dataset.modes.tolist() if dataset.modes is not None else None,
        "sigma": dataset.sigma,
    }
    if dataset.class_names:
        identity["class_names"] = list(dataset.class_names)
    return identity


def _statistics(dataset: Dataset, part: str) -> dict[str, Any]:
    x = dataset.train_x if part == "train" else dataset.test_x
    y = dataset.train_y if part == "train" else dataset.test_y
    stats: dict[str, Any] = {
        "count": len(x),
        "mean": round(float(x.mean()), 6),
        "std": round(float(x.std()), 6),
        "min": round(float(x.min()), 6),
        "max": round(float(x.max()), 6),
    }
    if y is not None:
        stats["class_counts"] = torch.bincount(y, minlength=dataset.num_classes).tolist()
    return stats
