"""Running queued prompts off the event loop.

A `Worker` runs one prompt at a time (today: `LocalWorker`, the engine's Executor in this process).
The `Dispatcher` gives each worker a thread that takes the next item from the queue, forwards the
engine's events to the WebSocket hub, and files the result in the history. More workers (GPUs,
machines) can be added to one dispatcher later without touching the HTTP side.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Protocol

from engine.events import Event, EventSink, timestamp_ms
from nodes.context import InterruptFlag
from server.jobs import QueueItem, history_item
from server.prompt_queue import PromptQueue
from server.ws_hub import Hub

log = logging.getLogger("loom.server")


@dataclass
class RunOutcome:
    status: str  # "success" | "error" | "interrupted"
    outputs: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


class Worker(Protocol):
    name: str

    def execute(self, item: QueueItem, on_event: EventSink, interrupt: InterruptFlag) -> RunOutcome: ...

    def free(self, unload_models: bool, free_memory: bool) -> None: ...

    def stats(self) -> dict: ...


class LocalWorker:
    """The engine's Executor, in this process; its cache lives as long as the worker."""

    def __init__(self, registry, cache=None, name: str = "local"):
        from engine.execution import Executor

        self.name = name
        self.executor = Executor(registry, cache=cache) if cache is not None else Executor(registry)

    def execute(self, item: QueueItem, on_event: EventSink, interrupt: InterruptFlag) -> RunOutcome:
        result = self.executor.execute(item.prompt, item.prompt_id, extra_data=item.run_extra_data(),
                                       execute_outputs=item.outputs, on_event=on_event, interrupt=interrupt)
        return RunOutcome(result.status, dict(result.outputs or {}), list(result.messages or []),
                          dict(result.meta or {}))

    def free(self, unload_models: bool, free_memory: bool) -> None:
        if free_memory:
            self.executor.reset()
        if unload_models or free_memory:
            try:
                from nodes.diffusion.management import model_manager
            except ImportError:
                return
            model_manager().free()

    def stats(self) -> dict:
        try:
            return {"cache": self.executor.cache.stats()}
        except Exception:
            return {}


@dataclass
class Running:
    item: QueueItem
    worker: str
    interrupt: InterruptFlag
    last_node: str | None = None


class Dispatcher:
    def __init__(self, queue: PromptQueue, hub: Hub, workers: list[Worker]):
        self.queue = queue
        self.hub = hub
        self.workers = workers
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._free: dict[str, tuple[bool, bool]] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- control (any thread) ----------------------------------------------------------------------
    def start(self) -> None:
        for worker in self.workers:
            t = threading.Thread(target=self._loop, args=(worker,), name=f"loom-worker-{worker.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.interrupt()
        self.queue.close()
        for t in self._threads:
            t.join(timeout)

    def interrupt(self, prompt_id: str | None = None) -> list[str]:
        """Interrupt the given running prompt, or every running prompt; returns those interrupted."""
        with self._lock:
            targets = [r for r in self._running.values() if prompt_id is None or r.item.prompt_id == prompt_id]
        for r in targets:
            r.interrupt.set()
        return [r.item.prompt_id for r in targets]

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Done by each worker between prompts (never during one)."""
        with self._lock:
            for worker in self.workers:
                u, f = self._free.get(worker.name, (False, False))
                self._free[worker.name] = (u or unload_models, f or free_memory)
        self.queue.wake()

    def running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def running_for_client(self, client_id: str) -> Running | None:
        with self._lock:
            return next((r for r in self._running.values() if r.item.client_id == client_id), None)

    # -- the worker threads --------------------------------------------------------------------------
    def _loop(self, worker: Worker) -> None:
        while not self._stopping.is_set():
            self._do_free(worker)
            item = self.queue.take()
            if item is None:
                continue
            try:
                self._run(worker, item)
            except Exception:  # never lose the worker thread
                log.exception("worker %s failed while filing prompt %s", worker.name, item.prompt_id)

    def _do_free(self, worker: Worker) -> None:
        with self._lock:
            request = self._free.pop(worker.name, None)
        if request:
            try:
                worker.free(*request)
                log.info("worker %s freed memory (unload_models=%s, free_memory=%s)", worker.name, *request)
            except Exception:
                log.exception("freeing memory on worker %s failed", worker.name)

    def _run(self, worker: Worker, item: QueueItem) -> None:
        run = Running(item, worker.name, InterruptFlag())
        with self._lock:
            self._running[item.prompt_id] = run
        client_id = item.client_id
        started = time.monotonic()

        def on_event(event: Event) -> None:
            data = event.data
            if event.type == "preview":
                node = str(data.get("node_id") or data.get("node") or run.last_node or "")
                meta = {"node_id": node, "prompt_id": item.prompt_id,
                        "display_node_id": data.get("display_node_id", node),
                        "parent_node_id": data.get("parent_node_id"),
                        "real_node_id": data.get("real_node_id", node)}
                image = data.get("image")
                if data.get("format"):
                    image = (data["format"], image, data.get("max_size") or 512)
                self.hub.post_preview(image, meta, client_id)
                return
            if event.type == "executing" and data.get("node") is not None:
                run.last_node = data.get("display_node") or data.get("node")
            self.hub.post_engine_event(event.type, data, client_id)

        try:
            outcome = worker.execute(item, on_event, run.interrupt)
        except Exception as e:  # an engine bug must not take the server down: report it as a failed run
            log.exception("the engine raised while running prompt %s", item.prompt_id)
            error = {"prompt_id": item.prompt_id, "node_id": run.last_node or "", "node_type": "", "executed": [],
                     "exception_message": f"Loom failed to run this prompt: {e}", "exception_type": type(e).__name__,
                     "traceback": traceback.format_exception(e), "current_inputs": {}, "current_outputs": [],
                     "timestamp": timestamp_ms()}
            self.hub.post_engine_event("execution_error", error, client_id)
            outcome = RunOutcome("error", messages=[
                ("execution_start", {"prompt_id": item.prompt_id, "timestamp": item.start_time}),
                ("execution_error", error)])
        finally:
            with self._lock:
                self._running.pop(item.prompt_id, None)

        if self._stopping.is_set() and outcome.status == "interrupted":
            # Cut short by shutdown, not by the user: left as running, the next start files it as
            # "Loom stopped while this prompt was running", exactly like after a crash.
            log.warning("prompt %s was stopped by the shutdown", item.prompt_id)
            return
        status_str = "success" if outcome.status == "success" else "error"
        self.queue.done(item, history_item(item, outcome.outputs, status_str, outcome.messages, outcome.meta))
        if client_id is not None:
            self.hub.post("executing", {"node": None, "prompt_id": item.prompt_id}, client_id)
        log.info("prompt %s finished: %s in %.2fs (%d outputs)", item.prompt_id, outcome.status,
                 time.monotonic() - started, len(outcome.outputs))
