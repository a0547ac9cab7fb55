"""POST /prompt, the queue, history and jobs: shapes, ordering, deletion, partial execution, paging."""

from __future__ import annotations

import time

import pytest
from srv_helpers import WSClient, image_graph, sleep_graph


def assert_prompt_error(r, error_type: str) -> dict:
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "node_errors"}
    assert set(body["error"]) >= {"type", "message", "details", "extra_info"}
    assert body["error"]["type"] == error_type, body
    return body


def test_post_prompt_success_shape_and_get_prompt(server):
    r = server.post("/prompt", json={"prompt": image_graph(), "prompt_id": "my-id", "client_id": "c1",
                                     "extra_data": {"extra_pnginfo": {"workflow": {"id": "wf-1"}},
                                                    "api_key_comfy_org": "secret-key"}})
    assert r.status_code == 200
    body = r.json()
    assert body["prompt_id"] == "my-id" and isinstance(body["number"], int) and body["node_errors"] == {}
    history = server.wait_history("my-id")
    number, pid, prompt, extra, outputs = history["prompt"]
    assert pid == "my-id" and prompt == image_graph() and outputs == ["3"]
    assert extra["client_id"] == "c1" and isinstance(extra["create_time"], int)
    assert "api_key_comfy_org" not in extra  # credentials are never stored or shown
    assert "secret-key" not in server.get("/api/history").text
    assert server.get("/api/jobs/my-id").json()["workflow_id"] == "wf-1"
    assert server.get("/prompt").json() == {"exec_info": {"queue_remaining": 0}}


@pytest.mark.parametrize("body,error_type", [
    ({}, "no_prompt"),
    ({"prompt": None}, "no_prompt"),
    ({"prompt": [1, 2]}, "invalid_prompt"),
    ({"prompt": {"1": {"inputs": {}}}}, "invalid_prompt"),
    ({"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}}, "missing_node_type"),
    ({"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}}, "prompt_no_outputs"),
    ({"prompt": image_graph(), "number": "first"}, "invalid_prompt"),
    ({"prompt": image_graph(), "front": "yes"}, "invalid_prompt"),
    ({"prompt": image_graph(), "client_id": 5}, "invalid_prompt"),
    ({"prompt": image_graph(), "prompt_id": ""}, "invalid_prompt"),
    ({"prompt": image_graph(), "extra_data": []}, "invalid_prompt"),
    ({"prompt": image_graph(), "partial_execution_targets": "3"}, "invalid_prompt"),
    ({"prompt": image_graph(), "partial_execution_targets": []}, "prompt_no_outputs"),
])
def test_post_prompt_errors(server, body, error_type):
    assert_prompt_error(server.post("/api/prompt", json=body), error_type)


def test_post_prompt_malformed_json_and_wrong_body(server):
    assert_prompt_error(server.post("/api/prompt", data=b"{not json"), "invalid_json")
    assert_prompt_error(server.post("/api/prompt", data=b"[1,2]"), "invalid_json")
    assert_prompt_error(server.post("/api/prompt", data=b""), "no_prompt")
    assert_prompt_error(server.post("/api/prompt", data=b"\xff\xfe"), "invalid_json")


def test_post_prompt_node_errors(server):
    bad = image_graph()
    bad["1"]["inputs"]["width"] = "wide"
    body = assert_prompt_error(server.post("/api/prompt", json={"prompt": bad}), "prompt_outputs_failed_validation")
    assert body["node_errors"]["1"]["class_type"] == "EmptyImage"
    assert body["node_errors"]["1"]["errors"][0]["type"] == "invalid_input_type"


def test_unknown_node_types_name_the_pack_that_provides_them(server, monkeypatch):
    import sys
    import types

    index = types.ModuleType("nodes.pack_index")
    index.packs_providing = lambda class_types: {c: [{"name": "was-node-suite"}] for c in class_types
                                                 if c == "WAS_Image_Blend"}
    monkeypatch.setitem(sys.modules, "nodes.pack_index", index)
    prompt = {"1": {"class_type": "WAS_Image_Blend", "inputs": {}}}
    body = assert_prompt_error(server.post("/api/prompt", json={"prompt": prompt}), "missing_node_type")
    assert body["error"]["extra_info"]["providers"] == {"WAS_Image_Blend": [{"name": "was-node-suite"}]}


def test_duplicate_prompt_id_while_queued(server):
    server.queue_prompt(sleep_graph(seconds=20, steps=200), prompt_id="dup")
    assert_prompt_error(server.post("/api/prompt", json={"prompt": image_graph(), "prompt_id": "dup"}),
                        "duplicate_prompt_id")
    server.post("/api/interrupt")


def test_partial_execution_runs_only_the_targets_and_their_dependencies(server):
    prompt = image_graph(prefix="partial_a")
    prompt["4"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "partial_b"}}
    pid = server.queue_prompt(prompt, partial_execution_targets=["4"])["prompt_id"]
    history = server.wait_history(pid)
    assert history["prompt"][4] == ["4"]
    assert set(history["outputs"]) == {"4"}
    outputs = server.ctx.folders.output_dir
    assert list(outputs.glob("partial_b*")) and not list(outputs.glob("partial_a*"))


def test_queue_order_front_number_delete_and_clear(server):
    ws = WSClient(server.ws_url)
    try:
        blocker = server.queue_prompt(sleep_graph(seconds=20, steps=400), client_id=ws.sid)["prompt_id"]
        ws.wait_for(lambda m: m["type"] == "progress")
        a = server.queue_prompt(image_graph(prefix="a"), prompt_id="a")
        b = server.queue_prompt(image_graph(prefix="b"), prompt_id="b")
        c = server.queue_prompt(image_graph(prefix="c"), prompt_id="c", front=True)
        d = server.queue_prompt(image_graph(prefix="d"), prompt_id="d", number=0.5)
        assert c["number"] < 0 < d["number"] < a["number"] < b["number"]
        q = server.get("/api/queue").json()
        assert [i[1] for i in q["queue_running"]] == [blocker]
        assert [i[1] for i in q["queue_pending"]] == ["c", "d", "a", "b"]
        item = q["queue_pending"][0]
        assert len(item) == 5 and item[2] == image_graph(prefix="c") and item[4] == ["3"]
        assert server.get("/api/prompt").json()["exec_info"]["queue_remaining"] == 5
        # Delete one pending item; a running or unknown id is not touched by the queue.
        r = server.post("/api/queue", json={"delete": ["d", blocker, "nope"]})
        assert r.status_code == 200 and r.json() == {"deleted": ["d"]}
        assert [i[1] for i in server.get("/queue").json()["queue_pending"]] == ["c", "a", "b"]
        assert server.get("/api/jobs?status=pending").json()["pagination"]["total"] == 3
        assert server.post("/api/queue", json={"clear": True}).json() == {"deleted": ["c", "a", "b"]}
        assert server.get("/api/queue").json()["queue_pending"] == []
        assert server.post("/api/queue", json={"delete": "a"}).status_code == 400
        assert server.post("/api/queue", data=b"{").json()["error"]["type"] == "invalid_json"
        status = ws.wait_for(lambda m: m["type"] == "status" and m["data"]["status"]["exec_info"]["queue_remaining"] == 1
                             and "sid" not in m["data"])
        assert status
    finally:
        server.post("/api/interrupt")
        ws.close()


def test_jobs_cancel_pending_and_running(server):
    running = server.queue_prompt(sleep_graph(seconds=20, steps=400))["prompt_id"]
    pending = server.queue_prompt(image_graph(), prompt_id="pending-one")["prompt_id"]
    deadline = time.monotonic() + 10
    while server.get(f"/api/jobs/{running}").json()["status"] != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = server.post(f"/api/jobs/{pending}/cancel")
    assert r.status_code == 200 and r.json()["action"] == "removed"
    assert server.get(f"/api/jobs/{pending}").status_code == 404
    r = server.post("/api/jobs/cancel", json={"job_ids": [running, "unknown"]})
    assert r.json() == {"cancelled": [running], "not_cancelled": {"unknown": "not_found"}}
    assert server.wait_history(running)["status"]["status_str"] == "error"
    assert server.post(f"/api/jobs/{running}/cancel").status_code == 409
    r = server.post("/api/jobs/nope/cancel")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    assert server.post("/api/jobs/cancel", json={}).status_code == 400


def test_history_paging_delete_and_clear(server):
    ids = []
    for i in range(5):
        ids.append(server.queue_prompt(image_graph(prefix=f"h{i}", color=i))["prompt_id"])
    for pid in ids:
        server.wait_history(pid)
    assert list(server.get("/api/history").json()) == ids
    assert list(server.get("/api/history?max_items=2").json()) == ids[-2:]
    assert list(server.get("/api/history?max_items=2&offset=1").json()) == ids[1:3]
    assert list(server.get("/api/history?offset=3").json()) == ids[3:]
    assert server.get(f"/api/history/{ids[0]}").json()[ids[0]]["status"]["completed"] is True
    assert server.get("/api/history/unknown").json() == {}
    r = server.get("/api/history?max_items=many")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("query parameter 'max_items'")
    server.post("/api/history", json={"delete": [ids[0]]})
    assert list(server.get("/history").json()) == ids[1:]
    server.post("/history", json={"clear": True})
    assert server.get("/api/history").json() == {}


def test_jobs_listing_shape_filter_sort_page(server):
    ids = [server.queue_prompt(image_graph(prefix=f"j{i}", color=i))["prompt_id"] for i in range(3)]
    for pid in ids:
        server.wait_history(pid)
    fail = {"1": {"class_type": "LoomTestFail", "inputs": {"message": "x"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    failed = server.queue_prompt(fail)["prompt_id"]
    server.wait_history(failed)
    body = server.get("/api/jobs?status=completed,failed,cancelled&limit=2&offset=0").json()
    assert body["pagination"] == {"offset": 0, "limit": 2, "total": 4, "has_more": True}
    assert [j["id"] for j in body["jobs"]] == [failed, ids[2]]  # newest first
    job = body["jobs"][1]
    assert job["status"] == "completed" and job["outputs_count"] == 1
    assert job["preview_output"]["nodeId"] == "3" and job["preview_output"]["mediaType"] == "images"
    assert job["execution_end_time"] >= job["execution_start_time"] >= job["create_time"]
    asc = server.get("/api/jobs?sort_order=asc&status=completed").json()["jobs"]
    assert [j["id"] for j in asc] == ids
    assert server.get("/api/jobs?status=failed").json()["jobs"][0]["id"] == failed
    by_duration = server.get("/api/jobs?sort_by=execution_duration").json()
    assert by_duration["pagination"]["total"] == 4
    page2 = server.get("/api/jobs?limit=2&offset=2").json()
    assert page2["pagination"]["has_more"] is False and len(page2["jobs"]) == 2
    detail = server.get(f"/api/jobs/{ids[0]}").json()
    assert detail["outputs"]["3"]["images"][0]["type"] == "output"
    assert detail["workflow"]["prompt"] == image_graph(prefix="j0", color=0)
    assert detail["execution_status"]["status_str"] == "success"
    for bad in ("status=done", "sort_by=name", "sort_order=up", "limit=0", "offset=-1", "limit=x"):
        r = server.get(f"/api/jobs?{bad}")
        assert r.status_code == 400 and "error" in r.json(), bad
    r = server.get("/api/jobs/unknown")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_free_resets_the_cache_between_runs(server):
    ws = WSClient(server.ws_url)
    try:
        first = server.queue_prompt(image_graph(prefix="free"), client_id=ws.sid)["prompt_id"]
        ws.wait_done(first)
        assert server.post("/api/free", json={"free_memory": True}).json() == {"unload_models": False,
                                                                               "free_memory": True}
        assert server.post("/api/free", data=b"[]").status_code == 400
        deadline = time.monotonic() + 5
        while server.ctx.dispatcher.workers[0].executor.cache.stats()["entries"]:
            assert time.monotonic() < deadline, "the worker did not free its cache"
            time.sleep(0.02)
        second = server.queue_prompt(image_graph(prefix="free"), client_id=ws.sid)["prompt_id"]
        ws.wait_done(second)
        cached = next(m for m in ws.events_for(second) if m["type"] == "execution_cached")
        assert cached["data"]["nodes"] == []
    finally:
        ws.close()


def test_history_paging_stays_fast_at_100k(tmp_path):
    """A generous bound: paging 100,000 history rows must not scan them all."""
    from server.jobs import QueueItem, history_item
    from server.store import Store

    store = Store(tmp_path, max_history=200_000)
    # 99,990 rows written by SQL (fast), then 10 through the store's own code path.
    store._db.execute("""
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99989)
        INSERT INTO history (prompt_id, number, job_status, create_time, start_time, end_time, outputs_count,
                             item)
        SELECT printf('p%06d', i), i, CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END, 1000000 + i,
               1000000 + i, 1000001 + i, 1,
               printf('{"prompt":[%d,"p%06d",{},{},[]],"outputs":{},"status":{"status_str":"success",' ||
                      '"completed":true,"messages":[]},"meta":{}}', i, i)
        FROM n""")
    for i in range(99_990, 100_000):
        item = QueueItem(number=i, prompt_id=f"p{i:06}", prompt={"1": {"class_type": "X", "inputs": {}}},
                         extra_data={"create_time": 1_000_000 + i}, outputs=["1"], create_time=1_000_000 + i)
        store.finish(item, history_item(
            item, {"1": {"images": [{"filename": f"{i}.png", "subfolder": "", "type": "output"}]}}, "success",
            [("execution_start", {"timestamp": 1}), ("execution_success", {"timestamp": 2})], {}))
    assert store.history_count() == 100_000
    timings = {}
    for name, call in {
        "last 64": lambda: store.history_page(64, None),
        "offset 99,000": lambda: store.history_page(64, 99_000),
        "one item": lambda: store.history_get("p050000"),
        "jobs page 1": lambda: store.jobs(["completed", "failed", "cancelled"], None, "created_at", True, 64, 0),
        "jobs deep page": lambda: store.jobs(["completed"], None, "created_at", True, 64, 80_000),
        "failed only": lambda: store.jobs(["failed"], None, "created_at", True, 64, 0),
    }.items():
        t = time.perf_counter()
        result = call()
        timings[name] = time.perf_counter() - t
        assert result
    assert list(store.history_page(2, 99_000)) == ["p099000", "p099001"]
    newest = store.jobs(["completed"], None, "created_at", True, 1, 0)
    assert newest[0][0]["id"] == "p099999" and newest[0][0]["preview_output"]["filename"] == "99999.png"
    assert newest[1] == 90_001
    print("history paging at 100k:", {k: f"{v * 1000:.1f} ms" for k, v in timings.items()})
    assert max(timings.values()) < 1.0, timings


def test_node_packs_see_the_server_through_prompt_server(server):
    """ComfyUI packs reach the queue, history and WebSocket through server.PromptServer.instance."""
    import server as server_pkg

    ps = server_pkg.PromptServer.instance
    ws = WSClient(server.ws_url)
    try:
        blocker = server.queue_prompt(sleep_graph(seconds=20, steps=400), client_id=ws.sid)["prompt_id"]
        ws.wait_for(lambda m: m["type"] == "progress")
        assert ps.client_id == ws.sid and ps.last_node_id == "1" and ps.last_prompt_id == blocker
        server.queue_prompt(image_graph(prefix="q1"), prompt_id="q1")
        server.queue_prompt(image_graph(prefix="q2"), prompt_id="q2")
        running, pending = ps.prompt_queue.get_current_queue()
        assert [r[1] for r in running] == [blocker] and [p[1] for p in pending] == ["q1", "q2"]
        assert ps.prompt_queue.get_tasks_remaining() == 3
        assert ps.prompt_queue.delete_queue_item(lambda item: item[1] == "q2") is True
        ps.send_sync("my_pack.hello", {"x": 1}, ws.sid)
        assert ws.wait_for(lambda m: m["type"] == "my_pack.hello")["data"] == {"x": 1}
        server.post("/api/interrupt")
        server.wait_history("q1")
        assert "q1" in ps.prompt_queue.get_history(max_items=5)
    finally:
        ws.close()
