"""`loom serve` as a real subprocess: options, refusals, the URL, and a queue that survives kill -9."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import requests
from srv_helpers import REPO, ServeProcess, image_graph, sleep_graph, wait_history

from tests.shared_helpers import free_port


def loom(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_refuses_a_public_host_without_a_token(tmp_path):
    r = loom("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2
    assert "--auth-token" in r.stderr and "--insecure" in r.stderr and "0.0.0.0" in r.stderr
    assert not (tmp_path / "d" / "loom.sqlite3").exists()


def test_help_lists_the_options():
    r = loom("serve", "--help")
    for option in ("--host", "--port", "--data-dir", "--models-dir", "--cpu", "--cache-ram", "--cache-none",
                   "--auth-token", "--max-upload-mb", "--insecure", "--enable-cors-header", "--frontend", "--fast",
                   "--disable-custom-nodes", "--custom-nodes-allow"):
        assert option in r.stdout, option
    r = loom("serve", "--cache-ram", "2", "--cache-none")
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_public_host_with_token_prints_url_and_stops_cleanly(tmp_path):
    server = ServeProcess("--host", "0.0.0.0", "--auth-token", "tok", "--data-dir", str(tmp_path / "d"),
                          "--disable-custom-nodes", "--fast")
    try:
        server.wait_ready()
        assert f"Loom is ready at http://127.0.0.1:{server.port}/" in server.text()
        assert requests.get(server.url + "/api/prompt", timeout=10).status_code == 401
        r = requests.get(server.url + "/api/prompt", headers={"Authorization": "Bearer tok"}, timeout=10)
        assert r.json() == {"exec_info": {"queue_remaining": 0}}
    finally:
        server.stop()
    assert server.wait_exit() == 0
    assert (tmp_path / "d" / "loom.sqlite3").exists()


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = ServeProcess("--data-dir", str(tmp_path / "d"), "--disable-custom-nodes", port=port)
        assert server.wait_exit() == 1
        assert f"port {port}" in server.text() and "already in use" in server.text()


def test_comfy_frontend_is_served_and_missing_package_is_explained(tmp_path):
    server = ServeProcess("--frontend", "comfy", "--data-dir", str(tmp_path / "d"), "--disable-custom-nodes")
    try:
        server.wait_ready()
        index = requests.get(server.url + "/", timeout=10)
        assert index.status_code == 200 and 'type="module"' in index.text
        asset = index.text.split('src="./assets/')[1].split('"')[0]
        assert requests.get(f"{server.url}/assets/{asset}", timeout=10).status_code == 200
        assert "/extensions/core/" in " ".join(requests.get(server.url + "/api/extensions", timeout=10).json())
    finally:
        server.stop()
    missing = ServeProcess("--frontend", "comfy", "--data-dir", str(tmp_path / "d"),
                           env={"LOOM_TEST_HIDE_MODULES": "comfyui_frontend_package"})
    assert missing.wait_exit() == 2
    assert "comfyui-frontend-package" in missing.text()


def test_cache_flags(tmp_path):
    def cached_on_rerun(*flags: str) -> list[str]:
        server = ServeProcess("--data-dir", str(tmp_path / "d"), "--disable-custom-nodes", *flags)
        try:
            server.wait_ready()
            ids = []
            for _ in range(2):
                r = requests.post(server.url + "/api/prompt", json={"prompt": image_graph()}, timeout=10)
                ids.append(r.json()["prompt_id"])
                wait_history(server.url, ids[-1])
            messages = wait_history(server.url, ids[1])["status"]["messages"]
            return next(m[1]["nodes"] for m in messages if m[0] == "execution_cached")
        finally:
            server.stop()

    assert cached_on_rerun("--cache-none") == []
    assert {"1", "2"} <= set(cached_on_rerun("--cache-ram", "0.5"))


def test_queue_survives_kill_9(tmp_path):
    data = str(tmp_path / "d")
    first = ServeProcess("--data-dir", data, "--disable-custom-nodes")
    try:
        first.wait_ready()
        post = lambda body: requests.post(first.url + "/api/prompt", json=body, timeout=10).json()  # noqa: E731
        running = post({"prompt": sleep_graph(seconds=120, steps=1200), "prompt_id": "was-running"})
        deadline = time.monotonic() + 30
        while requests.get(f"{first.url}/api/jobs/was-running", timeout=10).json()["status"] != "in_progress":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pending = [post({"prompt": image_graph(prefix=f"after{i}", color=i), "prompt_id": f"pending-{i}",
                         "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf"}}}}) for i in range(3)]
        front = post({"prompt": image_graph(prefix="front"), "prompt_id": "pending-front", "front": True})
        queue = requests.get(first.url + "/api/queue", timeout=10).json()
        assert [i[1] for i in queue["queue_pending"]] == ["pending-front", "pending-0", "pending-1", "pending-2"]
    finally:
        first.kill9()
    assert running["number"] < pending[0]["number"] and front["number"] < 0

    second = ServeProcess("--data-dir", data, "--disable-custom-nodes")
    try:
        second.wait_ready()
        assert "was running when Loom stopped" in second.text()
        failed = wait_history(second.url, "was-running")
        assert failed["status"]["status_str"] == "error" and failed["status"]["completed"] is False
        error = failed["status"]["messages"][-1]
        assert error[0] == "execution_error"
        assert error[1]["exception_message"] == "Loom stopped while this prompt was running"
        job = requests.get(second.url + "/api/jobs/was-running", timeout=10).json()
        assert job["status"] == "failed" and job["execution_error"]["exception_type"] == "LoomStopped"
        for pid in ("pending-front", "pending-0", "pending-1", "pending-2"):
            assert wait_history(second.url, pid)["status"]["status_str"] == "success", pid
        order = list(requests.get(second.url + "/api/history", timeout=10).json())
        assert order == ["was-running", "pending-front", "pending-0", "pending-1", "pending-2"]
        assert requests.get(second.url + "/api/jobs/pending-1", timeout=10).json()["workflow_id"] == "wf"
        later = requests.post(second.url + "/api/prompt", json={"prompt": image_graph(prefix="later")}, timeout=10)
        assert later.json()["number"] > pending[-1]["number"]  # numbering continues after a restart
    finally:
        second.stop()


def test_graceful_stop_mid_run_files_the_run_as_stopped(tmp_path):
    data = str(tmp_path / "d")
    first = ServeProcess("--data-dir", data, "--disable-custom-nodes")
    try:
        first.wait_ready()
        requests.post(first.url + "/api/prompt", json={"prompt": sleep_graph(seconds=120, steps=1200),
                                                       "prompt_id": "long"}, timeout=10)
        requests.post(first.url + "/api/prompt", json={"prompt": image_graph(), "prompt_id": "next"}, timeout=10)
        deadline = time.monotonic() + 30
        while requests.get(f"{first.url}/api/jobs/long", timeout=10).json()["status"] != "in_progress":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        first.stop()
    assert first.wait_exit() == 0
    second = ServeProcess("--data-dir", data, "--disable-custom-nodes")
    try:
        second.wait_ready()
        long = wait_history(second.url, "long")
        assert long["status"]["messages"][-1][1]["exception_message"] == "Loom stopped while this prompt was running"
        assert wait_history(second.url, "next")["status"]["status_str"] == "success"
    finally:
        second.stop()


def test_custom_nodes_flags(tmp_path):
    """The real loader: the example pack's nodes and web folder appear, or not, as the flags say."""
    allowed = ServeProcess("--data-dir", str(tmp_path / "d"), "--custom-nodes-allow", "example_pack")
    try:
        allowed.wait_ready()
        info = requests.get(allowed.url + "/api/object_info", timeout=30).json()
        assert "ExampleGradientImage" in info
        urls = requests.get(allowed.url + "/api/extensions", timeout=10).json()
        js = next(u for u in urls if u.startswith("/extensions/example_pack/"))
        assert requests.get(allowed.url + js, timeout=10).status_code == 200
    finally:
        allowed.stop()
    disabled = ServeProcess("--data-dir", str(tmp_path / "d"), "--disable-custom-nodes")
    try:
        disabled.wait_ready()
        assert "ExampleGradientImage" not in requests.get(disabled.url + "/api/object_info", timeout=30).json()
        assert not requests.get(disabled.url + "/api/extensions", timeout=10).json()
    finally:
        disabled.stop()
