"""Cluster throughput: runs per minute with 1 and 2 Ray workers against local mode, and the dispatch
overhead per run.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/cluster_throughput.py [--runs 24] [--trips 50]

Three servers, one after the other, each a real `loom serve` subprocess: "local" (prompts run in the
server process), "ray x1" (`--workers ray` on a loopback Ray cluster of one 1-CPU node: one worker) and
"ray x2" (two nodes: two workers). The Ray clusters are `LocalCluster`s on this machine.

Throughput: `--runs` tiny txt2img workflows (the demo checkpoint, 64x64, 2 steps, distinct seeds) are
queued at once; the time is from the first POST to the last `executing {node: null}`. Every worker is
warmed up first (the model loaded), so loading is not counted. Beside runs per minute the table gives
where the time went: each run's time in the engine, how busy the workers were, and the CPU time of the
server and of the worker processes per run (on a machine of few cores they compete for the same ones).

Dispatch overhead: `--trips` sequential round trips of a weight-free workflow (EmptyImage -> SaveImage,
another colour each time so nothing is cached): POST, wait for its completion on the WebSocket, next.
The overhead per run is the median round trip with one Ray worker minus the median in local mode
(ray x2 is shown too). Figures are printed, never asserted; the goals (overhead < 20 ms per run, more
runs per minute with more workers) are stated beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from server.cluster.local_cluster import LOOPBACK_ENV, LocalCluster  # noqa: E402

DEMO_CKPT = "loom-demo-sd1.safetensors"
QUIET_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TIMEOUT_S = 600.0


# -- workflows ----------------------------------------------------------------------------------------
def txt2img(seed: int) -> dict:
    """The demo checkpoint at its smallest: 64x64, 2 steps."""
    sampler = {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
               "seed": seed, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
               "denoise": 1.0}
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO_CKPT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a lighthouse at dusk"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": sampler},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "bench"}},
    }


def blank_image(color: int) -> dict:
    """No weights, almost no work: what is left of a round trip is the server and the dispatch."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                     "color": color & 0xFFFFFF}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "trip"}},
    }


# -- the server subprocess ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`loom serve` in its own session (a Ctrl-C here does not reach it; we stop it in order)."""

    def __init__(self, data_dir: Path, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "serve.log"
        command = [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir",
                   str(data_dir), "--models-dir", str(REPO / "models"), "--disable-custom-nodes", *args]
        env = {**os.environ, **LOOPBACK_ENV, **QUIET_ENV, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"loom serve exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "Loom is ready at" not in self.log_path.read_text(errors="replace"):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"loom serve did not get ready in {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def wait_workers(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                ready = [n for n, w in self.get("/api/loom/stats")["workers"].items() if w.get("ready")]
            except OSError:
                ready = []
            if len(ready) >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} workers not ready in {timeout:.0f}s ({ready}):\n{self.log_tail()}")
            time.sleep(0.5)

    def processes(self) -> dict[str, list]:
        """psutil processes by role: the server, and its Ray workers (none in local mode)."""
        import psutil

        workers = self.get("/api/loom/stats").get("workers") or {}
        pids = [w["pid"] for w in workers.values() if w.get("pid") and w["pid"] != self.proc.pid]
        return {"server": [psutil.Process(self.proc.pid)], "workers": [psutil.Process(pid) for pid in pids]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def cpu_seconds(processes: dict[str, list]) -> dict[str, float]:
    """User + system CPU seconds so far, summed per role."""
    return {role: sum(sum(p.cpu_times()[:2]) for p in procs) for role, procs in processes.items()}


@contextmanager
def serving(data_dir: Path, cluster: LocalCluster | None = None, workers: int = 0) -> Iterator[Server]:
    """A ready server, local or on `cluster` with `workers` ready workers; stopped (and its actors
    killed) on the way out, whatever happened."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    args = ["--workers", f"ray:{cluster.address}", "--ray-namespace", namespace] if cluster else []
    server = Server(data_dir, *args)
    try:
        server.wait_ready()
        if cluster:
            server.wait_workers(workers)
        yield server
    finally:
        server.stop()
        if cluster:
            cluster.kill_namespace(namespace)


@contextmanager
def ray_cluster(nodes: int, worker_data: Path) -> Iterator[LocalCluster]:
    env = {**QUIET_ENV, "LOOM_WORKER_DATA_DIR": str(worker_data)}
    cluster = LocalCluster(nodes=nodes, cpus_per_node=1, env=env)
    try:
        yield cluster
    finally:
        cluster.shutdown()


# -- the client ---------------------------------------------------------------------------------------
class Client:
    """One WebSocket and one HTTP session; knows which prompts have finished."""

    def __init__(self, url: str):
        self.url = url
        self.client_id = uuid.uuid4().hex
        self.finished: set[str] = set()

    async def __aenter__(self) -> Client:
        import aiohttp

        self.session = aiohttp.ClientSession()
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        self.ws = await self.session.ws_connect(ws_url, max_msg_size=0)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.session.close()

    async def queue(self, prompt: dict) -> str:
        body = {"prompt": prompt, "client_id": self.client_id}
        async with self.session.post(self.url + "/api/prompt", json=body) as r:
            if r.status != 200:
                raise RuntimeError(f"POST /api/prompt answered {r.status}: {await r.text()}")
            return (await r.json())["prompt_id"]

    async def wait(self, prompt_ids: list[str]) -> None:
        """Until every one of them has sent `executing {node: null}` (a message may have come before
        its POST answered: it waits in the socket's buffer)."""
        import aiohttp

        while not self.finished.issuperset(prompt_ids):
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT_S)
            if msg.type != aiohttp.WSMsgType.TEXT:  # previews (binary) and anything else
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    raise RuntimeError(f"the WebSocket closed: {msg}")
                continue
            data = json.loads(msg.data)
            if data["type"] == "executing" and data["data"].get("node") is None:
                self.finished.add(data["data"]["prompt_id"])

    async def outcomes(self, prompt_ids: list[str]) -> tuple[Counter, list[float]]:
        """Runs per worker ("local" in local mode) and each run's time in the engine (ms, from its
        execution_start and execution_success timestamps); a run that did not succeed is an error."""
        per_worker: Counter = Counter()
        engine_ms = []
        for pid in prompt_ids:
            async with self.session.get(f"{self.url}/api/history/{pid}") as r:
                item = (await r.json())[pid]
            if item["status"]["status_str"] != "success":
                raise RuntimeError(f"prompt {pid} failed: {item['status']['messages'][-1:]}")
            per_worker[item.get("loom", {}).get("worker", "local")] += 1
            stamps = {event: data.get("timestamp") for event, data in item["status"]["messages"]}
            engine_ms.append(stamps["execution_success"] - stamps["execution_start"])
        return per_worker, engine_ms


async def throughput(server: Server, runs: int, warm: int) -> dict:
    """`warm` warm-up runs at once (one per worker), then `runs` at once, timed to the last completion;
    with the CPU time the server and the workers spent on them."""
    async with Client(server.url) as client:
        warm_ids = [await client.queue(txt2img(seed=10_000 + i)) for i in range(warm)]
        await client.wait(warm_ids)
        warmed, _ = await client.outcomes(warm_ids)
        if len(warmed) < warm:
            print(f"  note: the warm-up runs went to {dict(warmed)}; not every worker holds the model yet")
        processes = server.processes()
        cpu_before = cpu_seconds(processes)
        start = time.perf_counter()
        ids = [await client.queue(txt2img(seed=i)) for i in range(runs)]
        await client.wait(ids)
        seconds = time.perf_counter() - start
        cpu = {role: (t - cpu_before[role]) * 1000 / runs for role, t in cpu_seconds(processes).items()}
        per_worker, engine_ms = await client.outcomes(ids)
        return {"seconds": seconds, "per_minute": runs * 60 / seconds, "workers": per_worker,
                "engine_ms": statistics.mean(engine_ms), "busy": sum(engine_ms) / 1000 / seconds,
                "server_cpu_ms": cpu["server"], "worker_cpu_ms": cpu["workers"]}


async def round_trips(url: str, trips: int) -> list[float]:
    """Milliseconds from POST to completion of each of `trips` sequential tiny runs (after one warm-up)."""
    latencies = []
    async with Client(url) as client:
        ids = []
        for i in range(trips + 1):
            start = time.perf_counter()
            ids.append(await client.queue(blank_image(color=0x102030 + i * 997)))
            await client.wait(ids[-1:])
            latencies.append((time.perf_counter() - start) * 1000)
        await client.outcomes(ids)
    return latencies[1:]


def measure(server: Server, args: argparse.Namespace, workers: int) -> dict:
    """Throughput, then round trips, on one ready server."""
    print(f"  throughput: {args.runs} txt2img runs ...", flush=True)
    result = asyncio.run(throughput(server, args.runs, warm=workers))
    print(f"  round trips: {args.trips} ...", flush=True)
    result["trips"] = asyncio.run(round_trips(server.url, args.trips))
    return result


# -- the table ----------------------------------------------------------------------------------------
def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def report(results: dict[str, dict], args: argparse.Namespace, loads: list[tuple[float, float, float]]) -> None:
    local = results["local"]
    print(f"\n### Throughput: {args.runs} txt2img runs queued at once (demo SD1 checkpoint, 64x64, 2 steps)\n")
    print("| mode | wall (s) | runs / min | vs local | runs per worker | engine ms / run | engines busy "
          "| CPU ms / run: server | workers |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for mode, r in results.items():
        split = " / ".join(str(n) for _, n in sorted(r["workers"].items()))
        workers_cpu = f"{r['worker_cpu_ms']:.0f}" if mode != "local" else "(in server)"
        print(f"| {mode} | {r['seconds']:.2f} | {r['per_minute']:.1f} | {r['per_minute'] / local['per_minute']:.2f} "
              f"| {split} | {r['engine_ms']:.0f} | {r['busy']:.2f} | {r['server_cpu_ms']:.0f} | {workers_cpu} |")
    print("\n(engine ms / run: execution_start to execution_success of each run; engines busy: the sum of those "
          "over the wall time, 2.00 = both workers always running; CPU ms / run: user + system time of the "
          "server process and of the worker processes over the timed batch, divided by the runs)")

    print(f"\n### Dispatch: {args.trips} sequential round trips of EmptyImage -> SaveImage\n")
    print("| mode | median (ms) | p90 (ms) | min (ms) | median - local (ms) |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(local["trips"])
    for mode, r in results.items():
        med = statistics.median(r["trips"])
        print(f"| {mode} | {med:.1f} | {p90(r['trips']):.1f} | {min(r['trips']):.1f} | {med - base:+.1f} |")

    overhead = statistics.median(results["ray x1"]["trips"]) - base
    overhead_p90 = p90(results["ray x1"]["trips"]) - p90(local["trips"])
    scaling = results["ray x2"]["per_minute"] / results["ray x1"]["per_minute"]
    print(f"\ndispatch overhead per run (ray x1 - local): {overhead:.1f} ms at the median, {overhead_p90:.1f} ms at p90")
    print(f"goal: dispatch overhead < 20 ms per run -> {'met' if overhead < 20 else 'NOT met'} ({overhead:.1f} ms)")
    print(f"goal: throughput grows with workers (ray x2 / ray x1 > 1) -> "
          f"{'met' if scaling > 1 else 'NOT met'} ({scaling:.2f}x)")
    print(f"\nmachine: {os.cpu_count()} CPU cores shared by the server, the raylets and the workers; "
          "load average (1/5/15 min) " + ", ".join("/".join(f"{x:.2f}" for x in load) for load in loads)
          + " (start, end)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=24, help="txt2img runs queued at once per mode (default 24)")
    p.add_argument("--trips", type=int, default=50, help="sequential round trips per mode (default 50)")
    args = p.parse_args()
    if args.runs < 1 or args.trips < 2:
        p.error("--runs must be at least 1 and --trips at least 2")
    loads = [os.getloadavg()]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as tmp:
        root = Path(tmp)
        print("local ...", flush=True)
        (root / "local").mkdir()
        with serving(root / "local") as server:
            results["local"] = measure(server, args, workers=1)
        for nodes in (1, 2):
            mode = f"ray x{nodes}"
            print(f"{mode}: starting a {nodes}-node Ray cluster ...", flush=True)
            data, worker_data = root / mode.replace(" ", "-"), root / f"workers-{nodes}"
            data.mkdir()
            with ray_cluster(nodes, worker_data) as cluster, serving(data, cluster, workers=nodes) as server:
                results[mode] = measure(server, args, workers=nodes)
    loads.append(os.getloadavg())
    report(results, args, loads)


if __name__ == "__main__":
    main()
