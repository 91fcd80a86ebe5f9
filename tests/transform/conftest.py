"""Fixtures shared by the transform tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.catalog.store import Catalog


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    """A fresh SQLite catalog for one test."""
    cat = Catalog.open("sqlite:///" + str(tmp_path / "catalog.db"))
    yield cat
    cat.close()
