"""The server restarts while runs are queued and re-attaches to its workers; a worker whose machine
lacks the server's models is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from cluster_support import CLUSTER_ENV, DEMO_CKPT, ClusterServer, txt2img_graph

from tests.server.srv_helpers import sleep_graph, wait_history
from tests.shared_helpers import REPO


def loom_workers(action: str, cluster, namespace: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "workers", action, "--address", cluster.address,
                           "--ray-namespace", namespace], cwd=REPO, env={**os.environ, **CLUSTER_ENV},
                          capture_output=True, text=True, timeout=120)


def wait_running_count(server, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for w in server.stats()["workers"].values() if w.get("running")) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} runs did not start: {server.stats()}")


def test_a_restarted_server_reattaches_and_runs_what_was_queued(ray_cluster, tmp_path):
    namespace = f"t-restart-{uuid.uuid4().hex[:6]}"
    data = tmp_path / "data"
    first = ClusterServer(ray_cluster, data, namespace=namespace)
    second = None
    try:
        first.wait_ready()
        pids = {name: w["pid"] for name, w in first.wait_workers(2).items()}
        warm = wait_history(first.url, first.queue(txt2img_graph(seed=3)), 240)
        assert warm["status"]["status_str"] == "success"

        # Both workers busy with long runs, three more waiting; then the server dies without a word.
        running = [first.queue(sleep_graph(seconds=3, steps=30, seed=100 + i)) for i in range(2)]
        wait_running_count(first, 2)
        queued = [first.queue(sleep_graph(seconds=0.3, steps=3, seed=200 + i)) for i in range(3)]
        first.kill9()

        second = ClusterServer(ray_cluster, data, namespace=namespace, port=first.port)
        second.wait_ready()
        workers = second.wait_workers(2)
        assert {name: w["pid"] for name, w in workers.items()} == pids  # the same processes: re-attached
        # The worker that loaded the checkpoint still has it, and says so.
        assert any(w["models"].get(DEMO_CKPT) for w in workers.values()), workers

        items = {pid: wait_history(second.url, pid, 120) for pid in running + queued}
        assert all(h["status"]["status_str"] == "success" for h in items.values()), items
        assert all(items[pid]["loom"]["attempts"] == 2 for pid in running)  # cut short once by the restart
        assert all(items[pid]["loom"]["attempts"] == 1 for pid in queued)

        # Its output cache survived too: the same prompt again is all cached, on the worker that has it.
        again = wait_history(second.url, second.queue(txt2img_graph(seed=3)), 120)
        assert again["loom"]["worker"] == warm["loom"]["worker"]
        cached = [m for m in again["status"]["messages"] if m[0] == "execution_cached"][0][1]["nodes"]
        assert set(cached) == set(txt2img_graph())

        # The workers outlive the server on purpose; `loom workers` lists and stops them.
        second.stop()
        listed = loom_workers("list", ray_cluster, namespace)
        assert listed.returncode == 0 and listed.stdout.count("idle") == 2 and DEMO_CKPT in listed.stdout
        stopped = loom_workers("stop", ray_cluster, namespace)
        assert stopped.returncode == 0 and stopped.stdout.count("stopped loom-") == 2
        assert "no Loom workers" in loom_workers("list", ray_cluster, namespace).stdout
    finally:
        first.stop()
        if second is not None:
            second.stop()
        ray_cluster.kill_namespace(namespace)


def test_a_worker_without_the_servers_models_is_refused(ray_cluster, tmp_path):
    other_models = tmp_path / "other-models"
    (other_models / "checkpoints").mkdir(parents=True)
    node = ray_cluster.add_node(LOOM_WORKER_MODELS_DIR=str(other_models))
    server = ClusterServer(ray_cluster, tmp_path / "data")
    try:
        server.wait_ready()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            stats = server.stats()
            ready = [w for w in stats["workers"].values() if w.get("ready")]
            if stats["cluster"]["refused"] and len(ready) == 2:
                break
            time.sleep(0.5)
        refused = stats["cluster"]["refused"]
        assert len(refused) == 1 and len(ready) == 2, stats
        reason = next(iter(refused.values()))
        assert "refused" in reason and f"checkpoints/{DEMO_CKPT}" in reason and "missing there" in reason
        assert next(iter(refused)) not in stats["workers"]
        assert reason in server.text()  # logged as an error too
        # runs go to the two good workers
        done = wait_history(server.url, server.queue(txt2img_graph(seed=9)), 240)
        assert done["status"]["status_str"] == "success"
    finally:
        server.stop()
        ray_cluster.kill_namespace(server.namespace)
        ray_cluster.remove_node(node)


def test_a_node_that_joins_gets_a_worker_and_one_that_leaves_takes_it_along(ray_cluster, tmp_path):
    server = ClusterServer(ray_cluster, tmp_path / "data")
    node = None
    try:
        server.wait_ready()
        before = set(server.wait_workers(2))
        node = ray_cluster.add_node()
        added = set(server.wait_workers(3, timeout=120)) - before
        assert len(added) == 1
        ray_cluster.remove_node(node)
        node = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and set(server.stats()["workers"]) != before:
            time.sleep(0.5)
        assert set(server.stats()["workers"]) == before, server.text()[-5000:]
        assert "gone with its node; dropped" in server.text()
        done = wait_history(server.url, server.queue(sleep_graph(seconds=0.2, steps=2, seed=77)), 60)
        assert done["status"]["status_str"] == "success" and done["loom"]["worker"] in before
    finally:
        server.stop()
        ray_cluster.kill_namespace(server.namespace)
        if node is not None:
            ray_cluster.remove_node(node)

