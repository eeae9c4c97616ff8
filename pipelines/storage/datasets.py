"""Versioned datasets in storage: publish a prepared version, fetch it where training runs.

gan_core reads a prepared version from a local folder; this module moves versions between
that folder and the storage layer (a path or s3://), so that every Ray worker, trial and
evaluation reads exactly the bytes the prepare flow validated.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_core.config import ExperimentConfig
from gan_core.data import Dataset, load_dataset
from gan_core.data.images import CLASS_NAMES, DEFAULT_FOLDERS
from gan_core.data.prepared import MANIFEST, build_manifest, encode_shards
from pipelines.settings import Settings
from pipelines.storage.location import Storage

IDX_SOURCES = ("mnist", "fashion-mnist")
# IDX sources with no folder to fall back on (fashion-mnist has Debian's): they need a root.
NEEDS_ROOT = tuple(source for source in IDX_SOURCES if source not in DEFAULT_FOLDERS)
# Sources a version folder can hold: one set of samples (stacked and two-domain sets are built at load time).
PREPARABLE = ("digits", "ring", "grid", *IDX_SOURCES)


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: str
    uri: str  # the version folder in storage; what `data.root` points at
    reused: bool  # True: this content was already stored, nothing was written
    manifest: dict[str, Any]

    def overrides(self) -> list[str]:
        """Config overrides that make a training run read this version."""
        return ["data.name=prepared", f"data.root={self.uri}"]


def read_source(source: str, root: str, n_train: int, seed: int, scratch: Path) -> tuple[Dataset, dict[str, Any]]:
    """Load a source dataset by name; IDX folders may live in storage (s3://) and are copied to `scratch`.

    The origin names the folder actually read, so that a version prepared from Debian's
    Fashion-MNIST (no root given) says where its files came from.
    """
    if source not in PREPARABLE:
        raise ValueError(f"source {source!r} cannot be prepared; allowed: {list(PREPARABLE)}")
    if source in IDX_SOURCES and root.startswith("s3://"):
        dataset = _load_from_s3(source, root, n_train, seed, scratch)
    else:
        dataset = load_dataset(source, root, n_train, seed)
    origin = {"source": source, "root": root or str(DEFAULT_FOLDERS.get(source, "")), "n_train": n_train, "seed": seed}
    return dataset, origin


def publish(dataset: Dataset, storage: Storage, origin: dict[str, Any]) -> DatasetVersion:
    """Store the dataset under datasets/NAME/VERSION unless that exact content is already there."""
    shards = encode_shards(dataset)
    manifest = build_manifest(dataset, shards, origin)
    target = storage.child("datasets", manifest["name"], manifest["version"])
    existing = _stored_manifest(target)
    if existing is not None and existing["content_hash"] == manifest["content_hash"]:
        return DatasetVersion(manifest["name"], manifest["version"], target.uri, True, existing)
    for name, data in shards.items():
        target.write_bytes(name, data)
    target.write_bytes(MANIFEST, json.dumps(manifest, indent=2).encode())  # last: marks the version complete
    return DatasetVersion(manifest["name"], manifest["version"], target.uri, False, manifest)


def fetch(uri: str, cache: Path) -> Path:
    """A local folder holding the version at `uri`, downloading it into `cache` when it is remote."""
    storage = Storage.from_uri(uri)
    if storage.scheme == "file":
        return Path(storage.prefix)
    manifest = _stored_manifest(storage)
    if manifest is None:
        raise FileNotFoundError(f"{uri}: no {MANIFEST} there; run the prepare flow first")
    local = cache / "datasets" / manifest["name"] / manifest["content_hash"]
    if (local / MANIFEST).is_file():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=local.parent, prefix=".incoming-"))
    for name in [*manifest["shards"], MANIFEST]:
        (staging / name).write_bytes(storage.read_bytes(name))
    try:
        staging.rename(local)  # atomic: concurrent workers on one node never see half a folder
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another worker finished first
    return local


def load_for(config: ExperimentConfig, cache: Path | None = None) -> Dataset:
    """The dataset a config names; a prepared version in storage is fetched to the local cache first."""
    root = config.data.root
    if config.data.name == "prepared":
        root = str(fetch(root, cache or Settings.from_env().home / "cache"))
    return load_dataset(config.data.name, root, config.data.n_train, config.data.seed)


def class_names_for(config: ExperimentConfig) -> tuple[str, ...]:
    """The class names of the data a config trains on, without loading its arrays (a picture's
    header needs only these): a prepared version's manifest holds them; empty where unnamed."""
    if config.data.name != "prepared":
        return CLASS_NAMES.get(config.data.name, ())
    manifest = _stored_manifest(Storage.from_uri(config.data.root))
    return tuple(manifest.get("class_names", ())) if manifest is not None else ()


def _stored_manifest(storage: Storage) -> dict[str, Any] | None:
    if not storage.exists(MANIFEST):
        return None
    return json.loads(storage.read_bytes(MANIFEST))


def _load_from_s3(source: str, root: str, n_train: int, seed: int, scratch: Path) -> Dataset:
    """IDX files under an s3:// prefix, copied to `scratch` and read there; errors name the prefix,
    not the scratch folder (which is gone by the time anyone reads them)."""
    storage = Storage.from_uri(root)
    storage.check()  # a missing bucket or refused credentials, named as such
    local = _download_folder(storage, scratch / "idx")
    try:
        return load_dataset(source, str(local), n_train, seed)
    except (ValueError, OSError) as error:
        raise type(error)(str(error).replace(str(local), storage.uri)) from None


def _download_folder(storage: Storage, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    names = storage.list()
    top = [name for name in names if "/" not in name]
    if not top:
        below = sorted({name.split("/")[0] + "/" for name in names})
        hint = (
            f"only folders {below}: give the one holding the four IDX files" if below else "expected the four IDX files"
        )
        raise FileNotFoundError(f"{storage.uri}: no files there ({hint})")
    for name in top:
        (into / name).write_bytes(storage.read_bytes(name))
    return into
