"""A Ray cluster of several nodes on this machine, on loopback only: for the tests, the benchmark and
trying `--workers ray` out without a second machine.

Each node is its own raylet offering `cpus_per_node` CPUs, so Loom plans one worker per node. The
worker processes a raylet starts inherit the environment it was started with; `env` (and the `env`
given to `add_node`) is how a test gives the workers of one node another models folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

# Ray binds the machine's routable address unless it is told the cluster is this machine alone. Ray
# reads this once, when it is first imported, so it must be in the environment before that.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """os.environ with these values for the duration (raylets started inside inherit them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class LocalCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, env: dict[str, str] | None = None):
        os.environ.update(LOOPBACK_ENV)
        from ray.cluster_utils import Cluster

        self.env = {**LOOPBACK_ENV, **(env or {})}
        self.cpus_per_node = cpus_per_node
        with environment(**self.env):
            self.cluster = Cluster(initialize_head=True,
                                   head_node_args={"num_cpus": cpus_per_node, "include_dashboard": False})
            for _ in range(nodes - 1):
                self.cluster.add_node(num_cpus=cpus_per_node)
        self.address: str = self.cluster.address
        self._driver = False

    def add_node(self, **env: str):
        """Start one more node; its workers see `env` on top of the cluster's."""
        with environment(**self.env, **env):
            return self.cluster.add_node(num_cpus=self.cpus_per_node)

    def remove_node(self, node) -> None:
        self.cluster.remove_node(node)

    def driver(self):
        """The `ray` module, with this process joined to the cluster (to look at or kill actors)."""
        import ray

        if not self._driver:
            ray.init(address=self.address, namespace="loom-local-cluster", log_to_driver=False)
            self._driver = True
        return ray

    def kill_namespace(self, namespace: str) -> int:
        """Stop every named actor of a namespace (a server's workers); returns how many."""
        ray = self.driver()
        count = 0
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry["namespace"] == namespace:
                try:
                    ray.kill(ray.get_actor(entry["name"], namespace=namespace))
                    count += 1
                except ValueError:  # gone meanwhile
                    pass
        return count

    def shutdown(self) -> None:
        if self._driver:
            import ray

            ray.shutdown()
            self._driver = False
        self.cluster.shutdown()
