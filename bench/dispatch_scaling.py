"""The hand-out's cost as workers grow: runs per second through the real queue (SQLite), dispatcher and
hub with 1 to 1,000 workers that finish instantly, so only Loom's own bookkeeping is timed.

    .venv/bin/python bench/dispatch_scaling.py [--runs 2000]

Every run names one of 20 model files and every worker holds one, so each hand-out scores the idle
workers by model bytes (the affinity path), as with real workers. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.dispatcher import Dispatcher, RunOutcome  # noqa: E402
from server.jobs import QueueItem  # noqa: E402
from server.prompt_queue import PromptQueue  # noqa: E402
from server.store import Store  # noqa: E402
from server.ws_hub import Hub  # noqa: E402

MODELS = [f"model-{i}.safetensors" for i in range(20)]


class InstantWorker:
    """A worker whose runs take no time: what is left is the dispatcher's, the queue's and the store's."""

    def __init__(self, name: str, model: str):
        self.name = name
        self._held = {model: 2_000_000_000}

    def execute(self, item, on_event, interrupt) -> RunOutcome:
        return RunOutcome("success")

    def interrupt(self, prompt_id) -> None:
        pass

    def free(self, unload_models, free_memory) -> None:
        pass

    def stats(self) -> dict:
        return {}

    def held_models(self) -> dict[str, int]:
        return self._held

    def is_ready(self) -> bool:
        return True


def measure(workers: int, runs: int) -> float:
    """Runs per second from the first one queued to the last one filed in the history, with this many workers."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        queue = PromptQueue(store)
        done = threading.Event()
        queue.on_change = lambda: store.history_count() >= runs and done.set()
        pool = [InstantWorker(f"w{i}", MODELS[i % len(MODELS)]) for i in range(workers)]
        dispatcher = Dispatcher(queue, Hub(16, 5), pool,
                                models_of=lambda prompt: {prompt["1"]["inputs"]["ckpt_name"]})
        dispatcher.start()  # the worker threads start before the clock does
        started = time.perf_counter()
        for i in range(runs):
            prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": MODELS[i % 20]}}}
            queue.put(QueueItem(number=i, prompt_id=f"p{i}", prompt=prompt, extra_data={}, outputs=["1"],
                                create_time=0))
        done.wait(600)
        elapsed = time.perf_counter() - started
        dispatcher.stop()
        filed = store.history_count()
        store.close()
    return filed / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    print(f"{args.runs} runs of instant workers\n")
    print("| workers | runs / s (queue, hand-out, history in SQLite) | µs per run | vs 1 worker |\n|---:|---:|---:|---:|")
    base = None
    for workers in (1, 10, 100, 1000):
        rate = measure(workers, args.runs)
        base = base or rate
        print(f"| {workers} | {rate:,.0f} | {1e6 / rate:,.0f} | {rate / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
