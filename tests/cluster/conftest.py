"""Fixtures: a two-node Ray cluster per test module, and a `loom serve --workers ray` on it per module."""

from __future__ import annotations

import pytest
from cluster_support import ClusterServer, start_cluster


@pytest.fixture(scope="module")  # stopped after each module: never left running beside the other tests
def ray_cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("worker-data"))
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def cluster_server(ray_cluster, tmp_path_factory):
    """A server with one ready worker on each node; its workers are stopped after the module."""
    server = ClusterServer(ray_cluster, tmp_path_factory.mktemp("server-data"))
    try:
        server.wait_ready()
        server.wait_workers(2)
        yield server
    finally:
        server.stop()
        ray_cluster.kill_namespace(server.namespace)
