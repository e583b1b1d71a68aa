"""Fixtures of the service's tests: a fixture world in a temp dir and a private BENTOML_HOME."""
from __future__ import annotations

from pathlib import Path

import pytest

from svc_fixtures import make_world


@pytest.fixture(scope="session", autouse=True)
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds and serves of the tests go to a throwaway store, never ~/bentoml."""
    home = tmp_path_factory.mktemp("bentoml_home")
    with pytest.MonkeyPatch.context() as env:   # restored when the session ends
        env.setenv("BENTOML_HOME", str(home))
        env.setenv("BENTOML_DO_NOT_TRACK", "true")
        yield home


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A fresh fixture world; returns its config path."""
    return make_world(tmp_path)
