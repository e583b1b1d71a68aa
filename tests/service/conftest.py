"""Fixtures of the service's tests: a fixture world in a temp dir and a private BENTOML_HOME."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from svc_fixtures import make_world


@pytest.fixture(scope="session", autouse=True)
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds and serves of the tests go to a throwaway store, never ~/bentoml."""
    home = tmp_path_factory.mktemp("bentoml_home")
    old = {k: os.environ.get(k) for k in ("BENTOML_HOME", "BENTOML_DO_NOT_TRACK")}
    os.environ["BENTOML_HOME"] = str(home)
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A fresh fixture world; returns its config path."""
    return make_world(tmp_path)
