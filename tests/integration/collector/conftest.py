"""Fixtures shared by the collector's integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flamehouse.collector.schema import migrate
from flamehouse.collector.store import Store, StoreConfig, embedded_dsn


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated embedded store of the test's own, closed afterwards."""
    store = Store(StoreConfig(dsn=embedded_dsn(tmp_path)))
    try:
        migrate(store)
        yield store
    finally:
        store.close()
