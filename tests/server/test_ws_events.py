"""The WebSocket side of runs: event order, routing, cache, interrupts, previews, reconnects."""

from __future__ import annotations

import time

from srv_helpers import WSClient, image_graph, sleep_graph

from server.previews import PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, parse_frame


def types(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]


def test_status_with_sid_on_connect_and_client_id_reused(server):
    ws = WSClient(server.ws_url, client_id="my-client-1")
    try:
        first = ws.json_messages()[0]
        assert first == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                    "sid": "my-client-1"}}
    finally:
        ws.close()
    fresh = WSClient(server.ws_url)
    try:
        assert len(fresh.sid) == 32 and fresh.sid != "my-client-1"
    finally:
        fresh.close()


def test_feature_flags_handshake(server):
    ws = WSClient(server.ws_url, feature_flags={"supports_preview_metadata": True})
    try:
        reply = ws.wait_for(lambda m: m["type"] == "feature_flags")
        assert reply["data"]["supports_preview_metadata"] is True
        assert reply["data"]["max_upload_size"] == server.config.max_upload_bytes
    finally:
        ws.close()


def test_run_event_sequence_goes_to_the_submitter_only(server):
    me, other = WSClient(server.ws_url), WSClient(server.ws_url)
    try:
        pid = server.queue_prompt(image_graph(), client_id=me.sid)["prompt_id"]
        me.wait_done(pid)
        mine = me.json_messages()
        seq = [m for m in mine if m["type"] != "status" or "sid" not in m["data"]]
        kinds = types(seq)
        # The dialect's order: start, cached, per node (executing ... executed), success, status, executing null.
        assert kinds[0] == "status"  # the broadcast when the prompt was queued
        assert kinds.index("execution_start") < kinds.index("execution_cached") < kinds.index("executing")
        executing = [m["data"]["node"] for m in seq if m["type"] == "executing"]
        assert executing == ["1", "2", "3", None]
        assert kinds.index("executed") < kinds.index("execution_success")
        tail = kinds[kinds.index("execution_success"):]
        assert tail == ["execution_success", "status", "executing"]
        executed = next(m for m in seq if m["type"] == "executed")
        assert executed["data"]["node"] == "3" and executed["data"]["prompt_id"] == pid
        image = executed["data"]["output"]["images"][0]
        assert image["type"] == "output" and image["filename"].startswith("loomtest")
        assert any(m["type"] == "progress_state" for m in seq)
        # The other client saw only broadcast queue status, nothing of the run.
        time.sleep(0.2)
        assert set(types(other.json_messages())) == {"status"}
        assert not other.events_for(pid)
    finally:
        me.close()
        other.close()


def test_prompt_without_client_id_sends_no_run_events(server):
    ws = WSClient(server.ws_url)
    try:
        pid = server.queue_prompt(image_graph())["prompt_id"]
        server.wait_history(pid)
        time.sleep(0.2)
        run_types = set(types(ws.events_for(pid)))
        # progress_state has no client to go to, so it is broadcast; the execution_* events are not sent.
        assert not run_types & {"execution_start", "executing", "executed", "execution_success"}
    finally:
        ws.close()


def test_cached_rerun_lists_cached_nodes_and_executes_only_changed(server):
    ws = WSClient(server.ws_url)
    try:
        first = server.queue_prompt(image_graph(prefix="cache"), client_id=ws.sid)["prompt_id"]
        ws.wait_done(first)
        second = server.queue_prompt(image_graph(prefix="cache"), client_id=ws.sid)["prompt_id"]
        ws.wait_done(second)
        events = ws.events_for(second)
        cached = next(m for m in events if m["type"] == "execution_cached")["data"]["nodes"]
        assert {"1", "2"} <= set(cached)
        ran = [m["data"]["node"] for m in events if m["type"] == "executing" and m["data"]["node"] is not None]
        assert not set(ran) & set(cached)
        # A cached output node re-sends its ui.
        assert any(m["type"] == "executed" and m["data"]["node"] == "3" for m in events)
        # Change the colour: EmptyImage and everything after it run again.
        third = server.queue_prompt(image_graph(color=0x00FF00, prefix="cache"), client_id=ws.sid)["prompt_id"]
        ws.wait_done(third)
        events = ws.events_for(third)
        assert next(m for m in events if m["type"] == "execution_cached")["data"]["nodes"] == []
        assert [m["data"]["node"] for m in events if m["type"] == "executing"] == ["1", "2", "3", None]
    finally:
        ws.close()


def test_interrupt_mid_run_then_a_clean_run(server):
    ws = WSClient(server.ws_url)
    try:
        pid = server.queue_prompt(sleep_graph(seconds=20, steps=400), client_id=ws.sid)["prompt_id"]
        ws.wait_for(lambda m: m["type"] == "progress" and m["data"]["prompt_id"] == pid)
        started = time.monotonic()
        r = server.post("/api/interrupt", json={"prompt_id": "not-the-running-one"})
        assert r.status_code == 200 and r.json() == {"interrupted": []}
        r = server.post("/api/interrupt", json={"prompt_id": pid})
        assert r.json() == {"interrupted": [pid]}
        stopped = ws.wait_for(lambda m: m["type"] == "execution_interrupted")
        assert stopped["data"]["prompt_id"] == pid and stopped["data"]["node_type"] == "LoomTestSleep"
        ws.wait_done(pid)
        assert time.monotonic() - started < 5
        history = server.wait_history(pid)
        assert history["status"]["status_str"] == "error"
        assert history["status"]["messages"][-1][0] == "execution_interrupted"
        assert server.get(f"/api/jobs/{pid}").json()["status"] == "cancelled"
        # The next run is not affected by the interrupt.
        nxt = server.queue_prompt(sleep_graph(seconds=0.1, steps=2), client_id=ws.sid)["prompt_id"]
        ws.wait_done(nxt)
        assert server.wait_history(nxt)["status"]["status_str"] == "success"
        # A global interrupt (no prompt_id) reaches whatever runs.
        third = server.queue_prompt(sleep_graph(seconds=20, steps=400, seed=3), client_id=ws.sid)["prompt_id"]
        ws.wait_for(lambda m: m["type"] == "progress" and m["data"]["prompt_id"] == third)
        assert server.post("/api/interrupt").json() == {"interrupted": [third]}
        ws.wait_done(third)
    finally:
        ws.close()


def test_execution_error_event_and_history(server):
    ws = WSClient(server.ws_url)
    try:
        prompt = {"1": {"class_type": "LoomTestFail", "inputs": {"message": "the test node failed"}},
                  "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
        pid = server.queue_prompt(prompt, client_id=ws.sid)["prompt_id"]
        ws.wait_done(pid)
        err = next(m for m in ws.events_for(pid) if m["type"] == "execution_error")["data"]
        assert err["node_id"] == "1" and err["node_type"] == "LoomTestFail"
        assert "the test node failed" in err["exception_message"]
        assert "execution_success" not in types(ws.events_for(pid))
        job = server.get(f"/api/jobs/{pid}").json()
        assert job["status"] == "failed" and "the test node failed" in job["execution_error"]["exception_message"]
    finally:
        ws.close()


def test_previews_type1_and_type4(server):
    plain = WSClient(server.ws_url)
    meta = WSClient(server.ws_url, feature_flags={"supports_preview_metadata": True})
    try:
        meta.wait_for(lambda m: m["type"] == "feature_flags")
        pid = server.queue_prompt(sleep_graph(seconds=0.3, steps=3, preview_size=1024), client_id=plain.sid)["prompt_id"]
        plain.wait_done(pid)
        frames = plain.binary_messages()
        assert len(frames) == 3
        kind, info, data = parse_frame(frames[0])
        assert kind == PREVIEW_IMAGE and info is None and frames[0][4:8] == b"\x00\x00\x00\x01"
        from io import BytesIO

        from PIL import Image

        img = Image.open(BytesIO(data))
        assert img.format == "JPEG" and max(img.size) == 512  # 1024 px previews are shrunk to 512
        assert not meta.binary_messages()  # not for a client that did not submit the prompt

        pid = server.queue_prompt(sleep_graph(seconds=0.3, steps=3, preview_size=64, seed=1),
                                  client_id=meta.sid)["prompt_id"]
        meta.wait_done(pid)
        kind, info, data = parse_frame(meta.binary_messages()[0])
        assert kind == PREVIEW_IMAGE_WITH_METADATA
        assert info["node_id"] == "1" and info["prompt_id"] == pid and info["image_type"] == "image/jpeg"
        assert Image.open(BytesIO(data)).size == (64, 64)
    finally:
        plain.close()
        meta.close()


def test_reconnecting_client_gets_the_running_node(server):
    ws = WSClient(server.ws_url, client_id="reconnecter")
    pid = server.queue_prompt(sleep_graph(seconds=20, steps=400), client_id="reconnecter")["prompt_id"]
    try:
        ws.wait_for(lambda m: m["type"] == "progress")
    finally:
        ws.close()
    again = WSClient(server.ws_url, client_id="reconnecter")
    try:
        msg = again.wait_for(lambda m: m["type"] == "executing")
        assert msg["data"]["node"] == "1" and msg["data"]["prompt_id"] == pid
        assert types(again.json_messages())[:2] == ["status", "executing"]
    finally:
        server.post("/api/interrupt")
        again.wait_done(pid)
        again.close()


def test_slow_client_never_stalls_execution(make_server):
    import base64
    import os
    import socket

    server = make_server(ws_queue_size=8, ws_stall_seconds=1.0)
    # A client that completes the handshake and then never reads a byte.
    stuck = socket.create_connection(("127.0.0.1", server.config.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    stuck.sendall((f"GET /ws?clientId=stuck HTTP/1.1\r\nHost: 127.0.0.1:{server.config.port}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b"101" in stuck.recv(12)
    good = WSClient(server.ws_url)
    try:
        started = time.monotonic()
        # ~200 large noise previews (several MB) for the stuck client, then one for the good one.
        pid = server.queue_prompt(sleep_graph(seconds=1.0, steps=200, preview_size=512), client_id="stuck")["prompt_id"]
        history = server.wait_history(pid, timeout=60)
        assert history["status"]["status_str"] == "success"
        assert time.monotonic() - started < 30
        assert "stuck" not in server.ctx.hub.clients  # cut off once it had not read for a second
        nxt = server.queue_prompt(image_graph(prefix="aftertheslow"), client_id=good.sid)["prompt_id"]
        good.wait_done(nxt, timeout=20)
    finally:
        stuck.close()
        good.close()


def test_status_bursts_coalesce_but_keep_their_place():
    """A status right behind another queued status is merged; one behind other messages is kept."""
    import asyncio
    import json

    from server.ws_hub import Client, Hub

    hub = Hub()
    loop = asyncio.new_event_loop()
    try:
        hub.bind(loop)
        remaining = [3]
        hub.queue_remaining = lambda: remaining[0]
        client = Client("c", ws=None)
        hub.clients["c"] = client
        for _ in range(5):
            hub.post_status()
        hub.post("execution_success", {"prompt_id": "p"}, "c")
        hub.post_status()
        hub.post_status()
        hub.post("executing", {"node": None, "prompt_id": "p"}, "c")
        remaining[0] = 0
        loop.run_until_complete(asyncio.sleep(0))
        sent = [json.loads(m) for m in client.outbox]
        assert [m["type"] for m in sent] == ["status", "execution_success", "status", "executing"]
        assert sent[2]["data"]["status"]["exec_info"]["queue_remaining"] == 0
        hub.post_status()  # the earlier ones were sent: a new request is queued again
        loop.run_until_complete(asyncio.sleep(0))
        assert json.loads(client.outbox[-1])["type"] == "status" and len(client.outbox) == 5
    finally:
        loop.close()


def test_http_stays_responsive_during_a_busy_run(server):
    prompt = {"1": {"class_type": "LoomTestBusy", "inputs": {"seconds": 4.0}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    ws = WSClient(server.ws_url)
    try:
        pid = server.queue_prompt(prompt, client_id=ws.sid)["prompt_id"]
        ws.wait_for(lambda m: m["type"] == "progress" and m["data"]["prompt_id"] == pid)
        slowest = 0.0
        for _ in range(10):
            t = time.monotonic()
            assert server.get("/api/prompt").json()["exec_info"]["queue_remaining"] == 1
            assert server.get("/api/object_info/SaveImage").status_code == 200
            slowest = max(slowest, time.monotonic() - t)
            time.sleep(0.1)
        assert slowest < 2.0, slowest  # generous: a blocked event loop would take the whole run (4 s)
        ws.wait_done(pid)
    finally:
        ws.close()
