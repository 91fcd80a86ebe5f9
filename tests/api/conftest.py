"""Module-scoped fixtures of the API tests: one built project, keys and a started app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import Keys, TestClient, build_project, create_keys, serve


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def keys(project: Path) -> Keys:
    return create_keys(project)


@pytest.fixture(scope="module")
def client(project: Path) -> Iterator[TestClient]:
    with serve(project) as started:
        yield started
