"""`loom serve --workers ray` on a real two-node Ray cluster: spread, model affinity, the event stream,
interrupt, and a worker process killed in the middle of a run."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import requests
from cluster_support import CLUSTER_ENV, DEMO_CKPT, txt2img_graph

from server.jobs import run_times
from tests.server.srv_helpers import WSClient, image_graph, sleep_graph, wait_history
from tests.shared_helpers import ServeProcess


def ws_url(server) -> str:
    return server.url.replace("http", "ws", 1) + "/ws"


def wait_running(server, prompt_id: str, timeout: float = 60) -> tuple[str, dict]:
    """(worker name, its stats) once the prompt is running on a worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, worker in server.stats()["workers"].items():
            if worker.get("running") == prompt_id:
                return name, worker
        time.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} did not start: {server.stats()}")


def test_runs_spread_over_both_workers(cluster_server):
    ids = [cluster_server.queue(sleep_graph(seconds=1.5, steps=5, seed=i)) for i in range(4)]
    items = [wait_history(cluster_server.url, pid, 90) for pid in ids]
    assert all(h["status"]["status_str"] == "success" for h in items)
    assert len({h["loom"]["worker"] for h in items}) == 2
    spans = sorted(run_times(h["status"]["messages"])[:2] for h in items)
    # two runs were on their workers at the same time
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), spans
    runs = {name: w["runs"] for name, w in cluster_server.stats()["workers"].items()}
    assert sorted(runs.values()) >= [2, 2], runs


def test_the_second_run_of_a_checkpoint_goes_to_the_worker_that_has_it(cluster_server):
    first = wait_history(cluster_server.url, cluster_server.queue(txt2img_graph(seed=1)), 240)
    assert first["status"]["status_str"] == "success", first["status"]
    holder = first["loom"]["worker"]
    workers = cluster_server.stats()["workers"]
    assert workers[holder]["models"].get(DEMO_CKPT, 0) > 1_000_000, workers[holder]
    other = next(name for name in workers if name != holder)
    assert DEMO_CKPT not in workers[other]["models"]

    # The holder ran last, so least-recently-used alone would pick the other worker.
    second = wait_history(cluster_server.url, cluster_server.queue(txt2img_graph(seed=2)), 240)
    assert second["status"]["status_str"] == "success"
    assert second["loom"]["worker"] == holder
    cached = [m for m in second["status"]["messages"] if m[0] == "execution_cached"][0][1]["nodes"]
    assert "1" in cached  # the checkpoint loader did not run again

    # The picture came back to the server: /view serves it from the server's output folder.
    image = second["outputs"]["7"]["images"][0]
    r = requests.get(cluster_server.url + "/api/view", params={**image}, timeout=30)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"

    # /free reaches every worker; the hand-out learns the model is gone
    r = requests.post(cluster_server.url + "/api/free", json={"unload_models": True}, timeout=30)
    assert r.status_code == 200
    deadline = time.monotonic() + 60
    while cluster_server.stats()["workers"][holder]["models"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster_server.stats()["workers"][holder]["models"] == {}


def _normalised(events: list[dict]) -> list[tuple]:
    """Event stream without what differs between any two runs (timestamps, ids, file names)."""
    out = []
    for m in events:
        data = {k: v for k, v in m["data"].items() if k not in ("timestamp", "prompt_id")}
        if m["type"] == "executed":
            data["output"] = {key: [{**e, "filename": "<file>"} if isinstance(e, dict) else e for e in entries]
                              for key, entries in data["output"].items()}
        if m["type"] == "progress_state":
            data = {"nodes": {n: {k: v for k, v in s.items() if k not in ("prompt_id",)}
                              for n, s in data["nodes"].items()}}
        out.append((m["type"], data))
    return out


def test_the_event_stream_matches_local_mode(cluster_server, tmp_path):
    graph = {**sleep_graph(seconds=0.4, steps=4, preview_size=32, seed=int(uuid.uuid4().int % 2**30)),
             **{f"1{k}": v for k, v in image_graph(color=0x123456, prefix=f"same-{uuid.uuid4().hex[:6]}").items()}}
    graph["13"]["inputs"]["images"] = ["12", 0]
    local = ServeProcess([sys.executable, "-m", "server.cli"], "--data-dir", str(tmp_path / "local"), env=CLUSTER_ENV)
    streams = []
    try:
        local.wait_ready()
        for server in (local, cluster_server):
            client_id = uuid.uuid4().hex
            ws = WSClient(ws_url(server), client_id=client_id)
            r = requests.post(server.url + "/api/prompt", json={"prompt": graph, "client_id": client_id}, timeout=30)
            prompt_id = r.json()["prompt_id"]
            ws.wait_done(prompt_id, 120)
            streams.append((_normalised(ws.events_for(prompt_id)), len(ws.binary_messages())))
            ws.close()
    finally:
        local.stop()
    (local_events, local_previews), (ray_events, ray_previews) = streams
    assert [t for t, _ in ray_events] == [t for t, _ in local_events]
    assert ray_events == local_events
    assert ray_previews == local_previews == 4


def test_interrupt_reaches_the_worker_running_the_prompt(cluster_server):
    client_id = uuid.uuid4().hex
    ws = WSClient(ws_url(cluster_server), client_id=client_id)
    try:
        prompt_id = cluster_server.queue(sleep_graph(seconds=120, steps=1200, seed=5), client_id=client_id)
        ws.wait_for(lambda m: m["type"] == "progress" and m["data"].get("prompt_id") == prompt_id, 60)
        started = time.monotonic()
        r = requests.post(cluster_server.url + "/api/interrupt", json={"prompt_id": prompt_id}, timeout=30)
        assert r.status_code == 200
        history = wait_history(cluster_server.url, prompt_id, 30)
        assert time.monotonic() - started < 10
        assert [m[0] for m in history["status"]["messages"]][-1] == "execution_interrupted"
        ws.wait_for(lambda m: m["type"] == "execution_interrupted" and m["data"]["prompt_id"] == prompt_id)
    finally:
        ws.close()
    after = wait_history(cluster_server.url, cluster_server.queue(image_graph(color=0x00FF00)), 60)
    assert after["status"]["status_str"] == "success"


def _wait_back(server, name: str, old_pid: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker = server.stats()["workers"].get(name, {})
        if worker.get("ready") and worker.get("pid") not in (None, old_pid):
            return
        time.sleep(0.5)
    raise AssertionError(f"worker {name} did not come back: {server.stats()}")


def test_a_killed_worker_has_its_run_requeued_once_then_failed(cluster_server):
    client_id = uuid.uuid4().hex
    ws = WSClient(ws_url(cluster_server), client_id=client_id)
    try:
        # Killed once: the run goes back to the front of the queue and finishes on the other worker.
        prompt_id = cluster_server.queue(sleep_graph(seconds=4, steps=40, seed=11), client_id=client_id)
        victim, worker = wait_running(cluster_server, prompt_id)
        ws.wait_for(lambda m: m["type"] == "progress" and m["data"].get("prompt_id") == prompt_id, 60)
        os.kill(worker["pid"], signal.SIGKILL)
        requeued = ws.wait_for(lambda m: m["type"] == "loom_requeued" and m["data"]["prompt_id"] == prompt_id, 60)
        assert requeued["data"]["worker"] == victim
        history = wait_history(cluster_server.url, prompt_id, 120)
        assert history["status"]["status_str"] == "success"
        assert history["loom"]["worker"] != victim and history["loom"]["attempts"] == 2
        _wait_back(cluster_server, victim, worker["pid"])  # Ray restarted it; it passed the check again

        # Killed twice: failed, with a message that says what happened.
        prompt_id = cluster_server.queue(sleep_graph(seconds=60, steps=600, seed=12), client_id=client_id)
        killed = []
        for _ in range(2):
            seen = len(ws.json_messages())
            # killed once it really runs there (a worker killed before the run reaches it simply restarts
            # and then runs it)
            ws.wait_for(lambda m, seen=seen: m["type"] == "progress" and m["data"].get("prompt_id") == prompt_id
                        and m in ws.json_messages()[seen:], 60)
            name, worker = wait_running(cluster_server, prompt_id, 120)
            assert name not in killed
            os.kill(worker["pid"], signal.SIGKILL)
            killed.append((name, worker["pid"]))
        history = wait_history(cluster_server.url, prompt_id, 120)
        assert history["status"]["status_str"] == "error", cluster_server.text()[-6000:]
        error = [m for m in history["status"]["messages"] if m[0] == "execution_error"][0][1]
        assert "was lost while running this prompt" in error["exception_message"]
        assert "tried 2 times" in error["exception_message"]
        ws.wait_for(lambda m: m["type"] == "execution_error" and m["data"]["prompt_id"] == prompt_id)
        for name, pid in killed:
            _wait_back(cluster_server, name, pid)
    finally:
        ws.close()
    # nothing was lost: the queue is empty and a new run works
    assert requests.get(cluster_server.url + "/api/queue", timeout=30).json() == {"queue_running": [],
                                                                                  "queue_pending": []}
    assert wait_history(cluster_server.url, cluster_server.queue(image_graph(color=0x0000FF)),
                        60)["status"]["status_str"] == "success"


def test_a_worker_killed_while_idle_is_noticed_and_rejoins(cluster_server):
    name, worker = sorted(cluster_server.wait_workers(2).items())[0]
    os.kill(worker["pid"], signal.SIGKILL)
    _wait_back(cluster_server, name, worker["pid"], 60)  # seen by the pool's pings, not by a failed run
    ids = [cluster_server.queue(sleep_graph(seconds=0.5, steps=2, seed=300 + i)) for i in range(2)]
    items = [wait_history(cluster_server.url, pid, 60) for pid in ids]
    assert [(h["status"]["status_str"], h["loom"]["attempts"]) for h in items] == [("success", 1)] * 2
    assert {h["loom"]["worker"] for h in items} == set(cluster_server.stats()["workers"])


def test_input_files_travel_to_the_workers_and_outputs_come_back_under_free_names(cluster_server):
    import io

    import numpy as np
    from PIL import Image

    picture = np.zeros((16, 16, 3), np.uint8)
    picture[:, :8] = (200, 30, 30)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    name = f"travel-{uuid.uuid4().hex[:6]}.png"
    r = requests.post(cluster_server.url + "/api/upload/image", files={"image": (name, buf.getvalue(), "image/png")},
                      timeout=30)
    assert r.status_code == 200, r.text
    prefix = f"travel-{uuid.uuid4().hex[:6]}"

    def graph(invert: bool) -> dict:
        g = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}
        if invert:
            g["2"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
            g["3"]["inputs"]["images"] = ["2", 0]
        return g

    # Queued together, the two runs go to the two workers; each saves `<prefix>_00001_.png` on its machine.
    ids = [cluster_server.queue(graph(False)), cluster_server.queue(graph(True))]
    items = [wait_history(cluster_server.url, pid, 60) for pid in ids]
    assert len({h["loom"]["worker"] for h in items}) == 2
    files = [h["outputs"]["3"]["images"][0] for h in items]
    assert sorted(f["filename"] for f in files) == [f"{prefix}_00001_.png", f"{prefix}_00002_.png"]
    for item, file in zip(items, files):
        pixels = np.asarray(Image.open(io.BytesIO(
            requests.get(cluster_server.url + "/api/view", params=file, timeout=30).content)).convert("RGB"))
        inverted = "2" in item["prompt"][2]
        expected = (255 - picture if inverted else picture).astype(int)
        assert np.abs(pixels.astype(int) - expected).max() <= 1  # float round trip
