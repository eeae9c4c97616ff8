"""Shared fixtures: a classifier cache for the whole session, so image metrics train it once."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("classifiers"))


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    # Results of seeded runs depend on the thread count (reduction order); pin it.
    torch.set_num_threads(2)
