"""Shared fixtures: a classifier cache for the whole session, so image metrics train it once."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests run first, whatever order the paths were given in. The integration services are
    session-wide (a Ray driver connected to a local cluster, AWS_* pointing at moto) and stay up
    until the session ends; unit tests that check what happens with no cluster, or before Ray
    starts, failed when they ran after them (`pytest tests/integration tests/unit`)."""
    items.sort(key=lambda item: "integration" in item.path.parts)


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("classifiers"))


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    # Results of seeded runs depend on the thread count (reduction order); pin it.
    torch.set_num_threads(2)
