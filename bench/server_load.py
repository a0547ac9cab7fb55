"""Server load: prompts accepted per second on POST /prompt, and WebSocket fan-out to many clients.

    .venv/bin/python bench/server_load.py [--prompts 500] [--clients 100] [--messages 200]

The server runs in a child process (so clients and server do not share a GIL); the clients run here.
"loom" is the real server (validation of a cheap 3-node graph, SQLite write, status broadcast) with
no worker, so nothing executes; "aiohttp floor" is a bare aiohttp app doing the least possible (parse
the JSON, answer an id; send each message to each socket in a loop): the cost of HTTP and WebSocket
themselves on this machine, as the baseline. Fan-out: the server sends `--messages` messages as fast
as it can, each to every one of `--clients` sockets; messages/s counts deliveries, latency is from
the send call to the client receiving it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bench"}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the servers (child process) ----------------------------------------------------------------------
def serve(kind: str, port: int, data_dir: str, conn) -> None:
    asyncio.run(_serve(kind, port, data_dir, conn))


async def _serve(kind: str, port: int, data_dir: str, conn) -> None:
    from aiohttp import web

    loop = asyncio.get_running_loop()
    if kind == "loom":
        from nodes.registry import builtin_registry
        from server.app import create_app
        from server.config import ServeConfig
        from server.context import build_context

        ctx = build_context(ServeConfig(port=port, data_dir=Path(data_dir), models_dir=Path(data_dir) / "m"),
                            builtin_registry(), workers=[])
        app = create_app(ctx)

        def broadcast(n: int) -> None:  # from a thread, as the worker sends events
            for i in range(n):
                ctx.hub.post("bench", {"i": i, "t": time.time()})
    else:
        sockets: list[web.WebSocketResponse] = []

        async def prompt(request):
            body = json.loads(await request.read())
            return web.json_response({"prompt_id": str(len(body)), "number": 0, "node_errors": {}})

        async def ws_handler(request):
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_str(json.dumps({"type": "status", "data": {"sid": "x"}}))
            sockets.append(ws)
            async for _ in ws:
                pass
            return ws

        async def send_all(n: int) -> None:
            for i in range(n):
                msg = json.dumps({"type": "bench", "data": {"i": i, "t": time.time()}})
                for ws in list(sockets):
                    await ws.send_str(msg)

        def broadcast(n: int) -> None:
            asyncio.run_coroutine_threadsafe(send_all(n), loop).result()

        app = web.Application()
        app.router.add_post("/api/prompt", prompt)
        app.router.add_get("/ws", ws_handler)

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    conn.send("ready")
    stop = asyncio.Event()

    def commands() -> None:
        while True:
            cmd, arg = conn.recv()
            if cmd == "broadcast":
                broadcast(arg)
                conn.send("sent")
            else:
                loop.call_soon_threadsafe(stop.set)
                return

    threading.Thread(target=commands, daemon=True).start()
    await stop.wait()
    await runner.cleanup()


# -- the clients (this process) -----------------------------------------------------------------------
async def post_prompts(url: str, n: int, concurrency: int) -> float:
    import aiohttp

    body = json.dumps({"prompt": GRAPH, "client_id": "bench"})
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one():
            async with sem, session.post(url + "/api/prompt", data=body) as r:
                assert r.status == 200, await r.text()
                await r.read()

        await one()  # warm up
        t = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - t)


async def fan_out(url: str, clients: int, messages: int, conn) -> tuple[float, float, float, int]:
    import aiohttp

    latencies: list[float] = []
    done = asyncio.Event()
    expected = clients * messages
    first_send = 0.0
    last_receive = 0.0

    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url.replace("http", "ws") + "/ws") for _ in range(clients)]
        for ws in sockets:
            await ws.receive()  # the status message

        async def reader(ws):
            nonlocal last_receive
            async for msg in ws:
                data = json.loads(msg.data)
                if data["type"] != "bench":
                    continue
                now = time.time()
                latencies.append(now - data["data"]["t"])
                last_receive = now
                if len(latencies) >= expected:
                    done.set()

        tasks = [asyncio.create_task(reader(ws)) for ws in sockets]
        first_send = time.time()
        await asyncio.to_thread(lambda: (conn.send(("broadcast", messages)), conn.recv()))
        try:
            await asyncio.wait_for(done.wait(), 120)
        except TimeoutError:
            pass
        for t in tasks:
            t.cancel()
        for ws in sockets:
            await ws.close()
    latencies.sort()
    rate = len(latencies) / max(last_receive - first_send, 1e-9)
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    return rate, p50, p99, len(latencies)


def measure(kind: str, args) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        proc = ctx.Process(target=serve, args=(kind, port, data_dir, child), daemon=True)
        proc.start()
        if not parent.poll(120) or parent.recv() != "ready":
            raise RuntimeError(f"{kind} server did not start")
        url = f"http://127.0.0.1:{port}"
        try:
            out = {
                "POST /prompt, 1 connection (prompts/s)": asyncio.run(post_prompts(url, args.prompts, 1)),
                "POST /prompt, 8 connections (prompts/s)": asyncio.run(post_prompts(url, args.prompts, 8)),
            }
            rate, p50, p99, got = asyncio.run(fan_out(url, args.clients, args.messages, parent))
            out[f"fan-out to {args.clients} clients (messages/s)"] = rate
            out["fan-out latency p50 (ms)"] = p50
            out["fan-out latency p99 (ms)"] = p99
            out["fan-out delivered"] = f"{got}/{args.clients * args.messages}"
        finally:
            parent.send(("stop", None))
            proc.join(30)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=500)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--messages", type=int, default=200)
    args = p.parse_args()
    loom = measure("loom", args)
    floor = measure("floor", args)
    width = max(len(k) for k in loom)
    print(f"\n{'metric':<{width}}  {'loom':>12}  {'aiohttp floor':>14}")
    print("-" * (width + 30))
    for key in loom:
        a, b = loom[key], floor[key]
        fmt = (lambda v: f"{v:12.1f}") if isinstance(a, float) else (lambda v: f"{v:>12}")
        print(f"{key:<{width}}  {fmt(a)}  {fmt(b):>14}")
    print(f"\n(cheap graph: EmptyImage -> ImageInvert -> SaveImage, validated and stored; "
          f"{os.cpu_count()} CPU cores, server in its own process)")


if __name__ == "__main__":
    main()
