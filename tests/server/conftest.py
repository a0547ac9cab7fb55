"""Fixtures: a live in-process server on a free port with the built-in and test nodes."""

from __future__ import annotations

import pytest
from srv_helpers import LiveServer
from srv_test_nodes import make_registry

from tests.shared_helpers import free_port


@pytest.fixture(scope="session")
def registry():
    return make_registry()


@pytest.fixture
def make_server(tmp_path, registry):
    """make_server(**config) -> a started LiveServer; all are stopped after the test."""
    from server.config import ServeConfig

    started = []

    def make(web_root=None, registry_=None, workers=None, **config) -> LiveServer:
        config.setdefault("data_dir", tmp_path / "data")
        config.setdefault("models_dir", tmp_path / "models")
        config.setdefault("port", free_port())
        server = LiveServer(ServeConfig(**config), registry_ or registry, web_root, workers).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server):
    return make_server()
