"""Running queued prompts off the event loop, on one worker or many.

A `Worker` runs one prompt at a time: `LocalWorker` is the engine in this process; `RayWorker`
(server/cluster/) is an engine in a Ray actor on some machine. The `Dispatcher` owns the hand-out:
one thread takes the next queued prompt as soon as a worker is idle and gives it to the idle worker
that already holds most of the run's model bytes (least recently used on a tie); each worker has a
thread that runs what it is given, forwards the engine's events to the WebSocket hub and files the
result in the history. A worker lost mid-run (its process or machine died) has the run requeued at
the front once; a second loss fails it with a message naming the worker.
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.events import Event, EventSink, timestamp_ms
from nodes.context import InterruptFlag
from server.jobs import QueueItem, history_item
from server.prompt_queue import PromptQueue
from server.ws_hub import Hub

log = logging.getLogger("loom.server")

MAX_ATTEMPTS = 2  # a run whose worker dies twice is failed, not tried a third time


@dataclass
class RunOutcome:
    status: str  # "success" | "error" | "interrupted"
    outputs: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)


class WorkerLost(Exception):
    """The worker went away during a run (its process or its machine died); the run can be tried again."""


class Worker(Protocol):
    name: str

    def execute(self, item: QueueItem, on_event: EventSink, interrupt: InterruptFlag) -> RunOutcome: ...

    def interrupt(self, prompt_id: str | None) -> None: ...

    def free(self, unload_models: bool, free_memory: bool) -> None: ...

    def stats(self) -> dict: ...

    def held_models(self) -> dict[str, int]:
        """Model files this worker has loaded, by name, with the bytes they take (for affinity)."""
        ...

    def is_ready(self) -> bool:
        """False while the worker cannot take runs (starting, restarting, refused)."""
        ...


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

    def interrupt(self, prompt_id: str | None) -> None:
        """Nothing to do: the flag the dispatcher sets is the one the engine checks."""

    def free(self, unload_models: bool, free_memory: bool) -> None:
        if free_memory:
            self.executor.reset()
        if unload_models or free_memory:
            try:
                from nodes.diffusion.management import existing_model_manager
            except ImportError:
                return
            manager = existing_model_manager()  # none yet: no model was ever loaded, nothing to free
            if manager is not None:
                manager.free()

    def stats(self) -> dict:
        try:
            return {"kind": "local", "cache": self.executor.cache.stats(), "models": self.held_models()}
        except Exception:
            return {}

    def held_models(self) -> dict[str, int]:
        from server.affinity import loaded_model_files

        return loaded_model_files()

    def is_ready(self) -> bool:
        return True


@dataclass
class Running:
    item: QueueItem
    worker: str
    interrupt: InterruptFlag
    last_node: str | None = None


@dataclass(eq=False)
class _Slot:
    """The dispatcher's book-keeping for one worker."""

    worker: Worker
    inbox: queue_mod.SimpleQueue = field(default_factory=queue_mod.SimpleQueue)
    thread: threading.Thread | None = None
    busy: bool = False
    last_used: float = 0.0  # monotonic time of its last hand-out (0: never)
    held: dict[str, int] = field(default_factory=dict)  # what it reported holding after its last run
    runs: int = 0
    removed: bool = False


def choose_worker(idle: list[_Slot], wanted: set[str]) -> _Slot:
    """The idle worker holding the most bytes of the wanted models; least recently used on a tie."""
    def score(slot: _Slot) -> tuple[int, float]:
        held = sum(size for name, size in slot.held.items() if name in wanted) if wanted else 0
        return (-held, slot.last_used)
    return min(idle, key=score)


class Dispatcher:
    def __init__(self, queue: PromptQueue, hub: Hub, workers: list[Worker],
                 models_of: Callable[[dict], set[str]] | None = None):
        self.queue = queue
        self.hub = hub
        self.models_of = models_of or (lambda prompt: set())
        self._slots: dict[str, _Slot] = {}
        # Indexes that keep a hand-out cheap with many workers: the idle ones, least recently used first,
        # and which workers hold each model.
        self._idle_slots: OrderedDict[str, _Slot] = OrderedDict()
        self._holders: dict[str, set[str]] = {}
        self._running: dict[str, Running] = {}
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._started = False
        self._thread: threading.Thread | None = None
        for worker in workers:
            self._add_slot(_Slot(worker, held=dict(worker.held_models())))

    def _add_slot(self, slot: _Slot, first: bool = False) -> None:  # under self._cond, or before start
        self._slots[slot.worker.name] = slot
        self._idle_slots[slot.worker.name] = slot
        if first:  # joined while others ran: never used, so before every used one
            self._idle_slots.move_to_end(slot.worker.name, last=False)
        self._set_held(slot, slot.held)

    def _drop_slot(self, name: str) -> _Slot | None:  # under self._cond
        slot = self._slots.pop(name, None)
        self._idle_slots.pop(name, None)
        if slot is not None:
            self._set_held(slot, {})
        return slot

    def _set_held(self, slot: _Slot, held: dict[str, int]) -> None:  # under self._cond
        name = slot.worker.name
        for model in slot.held:
            holders = self._holders.get(model)
            if holders is not None:
                holders.discard(name)
                if not holders:
                    del self._holders[model]
        slot.held = dict(held)
        for model in slot.held:
            self._holders.setdefault(model, set()).add(name)

    @property
    def workers(self) -> list[Worker]:
        with self._cond:
            return [s.worker for s in self._slots.values()]

    # -- control (any thread) ----------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            self._started = True
            slots = list(self._slots.values())
        for slot in slots:
            self._start_slot(slot)
        self._thread = threading.Thread(target=self._dispatch_loop, name="loom-dispatch", daemon=True)
        self._thread.start()

    def _start_slot(self, slot: _Slot) -> None:
        slot.thread = threading.Thread(target=self._worker_loop, args=(slot,), daemon=True,
                                       name=f"loom-worker-{slot.worker.name}")
        slot.thread.start()

    def add_worker(self, worker: Worker) -> None:
        """A worker joins (a Ray node came up); it takes runs from the next hand-out on."""
        held = dict(worker.held_models())
        with self._cond:
            old = self._drop_slot(worker.name)
            if old is not None:
                old.removed = True
                old.inbox.put(None)
            slot = _Slot(worker, held=held)
            self._add_slot(slot, first=True)
            started = self._started
            self._cond.notify_all()
        if started:
            self._start_slot(slot)
        self.queue.wake()

    def remove_worker(self, name: str) -> None:
        """A worker leaves; a run it has now finishes (or is lost) first."""
        with self._cond:
            slot = self._drop_slot(name)
        if slot is not None:
            slot.removed = True
            slot.inbox.put(None)

    def worker_ready(self, worker: Worker) -> None:
        """A worker became ready again, perhaps restarted with nothing loaded: the hand-out looks again."""
        held = dict(worker.held_models())
        with self._cond:
            slot = self._slots.get(worker.name)
            if slot is not None:
                self._set_held(slot, held)
            self._cond.notify_all()
        self.queue.wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.interrupt()
        self.queue.close()
        with self._cond:
            self._cond.notify_all()
            slots = list(self._slots.values())
        for slot in slots:
            slot.inbox.put(None)
        for thread in [self._thread] + [s.thread for s in slots]:
            if thread is not None:
                thread.join(timeout)

    def interrupt(self, prompt_id: str | None = None) -> list[str]:
        """Interrupt the given running prompt, or every running prompt; returns those interrupted."""
        with self._cond:
            targets = [r for r in self._running.values() if prompt_id is None or r.item.prompt_id == prompt_id]
            workers = {name: s.worker for name, s in self._slots.items()}
        for r in targets:
            r.interrupt.set()
            worker = workers.get(r.worker)
            if worker is not None:
                try:
                    worker.interrupt(r.item.prompt_id)
                except Exception:
                    log.exception("could not pass the interrupt to worker %s", r.worker)
        return [r.item.prompt_id for r in targets]

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Done by each worker between prompts (never during one)."""
        with self._cond:
            slots = list(self._slots.values())
        for slot in slots:
            slot.inbox.put(("free", unload_models, free_memory))

    def running(self) -> list[Running]:
        with self._cond:
            return list(self._running.values())

    def running_for_client(self, client_id: str) -> Running | None:
        with self._cond:
            return next((r for r in self._running.values() if r.item.client_id == client_id), None)

    def worker_states(self) -> dict[str, dict]:
        """What the dispatcher knows of each worker (no calls to the workers)."""
        with self._cond:
            running = {r.worker: r.item.prompt_id for r in self._running.values()}
            return {name: {"busy": s.busy, "ready": s.worker.is_ready(), "runs": s.runs,
                           "running": running.get(name)}
                    for name, s in self._slots.items()}

    # -- the hand-out --------------------------------------------------------------------------------
    def _any_idle(self) -> bool:  # under self._cond
        return any(s.worker.is_ready() for s in self._idle_slots.values())

    def _pick(self, wanted: set[str]) -> _Slot | None:
        """Under self._cond: the idle worker holding most of the wanted bytes, else the least recently used.

        Only the workers that hold a wanted model are scored, so a hand-out costs the same with 1,000
        workers as with 2."""
        holders = {name for model in wanted for name in self._holders.get(model, ())}
        candidates = [self._idle_slots[n] for n in holders
                      if n in self._idle_slots and self._idle_slots[n].worker.is_ready()]
        if candidates:
            return choose_worker(candidates, wanted)
        return next((s for s in self._idle_slots.values() if s.worker.is_ready()), None)

    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                while not self._stopping.is_set() and not self._any_idle():
                    self._cond.wait(1.0)
            if self._stopping.is_set():
                return
            item = self.queue.take(timeout=1.0)
            if item is None:
                continue
            try:
                wanted = self.models_of(item.prompt) if len(self._slots) > 1 else set()
            except Exception:
                log.exception("could not list the models of prompt %s", item.prompt_id)
                wanted = set()
            with self._cond:
                slot = self._pick(wanted)  # None: the worker went away between the wait and the take
                if slot is not None:
                    slot.busy = True
                    slot.last_used = time.monotonic()
                    del self._idle_slots[slot.worker.name]
            if slot is None:
                self.queue.put_back(item)
                continue
            slot.inbox.put(("run", item))

    # -- the worker threads --------------------------------------------------------------------------
    def _worker_loop(self, slot: _Slot) -> None:
        while not self._stopping.is_set() and not slot.removed:
            message = slot.inbox.get()
            if message is None:
                break
            if message[0] == "free":
                self._do_free(slot, message[1], message[2])
                continue
            item = message[1]
            try:
                self._run(slot, item)
            except Exception:  # never lose the worker thread
                log.exception("worker %s failed while filing prompt %s", slot.worker.name, item.prompt_id)
            finally:
                with self._cond:
                    slot.busy = False
                    slot.runs += 1
                    if not slot.removed:
                        self._idle_slots[slot.worker.name] = slot  # the most recently used, last
                    self._cond.notify_all()
        # a removed slot may still hold a run the hand-out gave it just before: return it
        while True:
            try:
                message = slot.inbox.get_nowait()
            except queue_mod.Empty:
                break
            if message is not None and message[0] == "run" and not self._stopping.is_set():
                self.queue.put_back(message[1])

    def _do_free(self, slot: _Slot, unload_models: bool, free_memory: bool) -> None:
        worker = slot.worker
        try:
            worker.free(unload_models, free_memory)
            held = dict(worker.held_models())
            with self._cond:
                self._set_held(slot, held)
            log.info("worker %s freed memory (unload_models=%s, free_memory=%s)", worker.name, unload_models,
                     free_memory)
        except Exception:
            log.exception("freeing memory on worker %s failed", worker.name)

    def _run(self, slot: _Slot, item: QueueItem) -> None:
        worker = slot.worker
        run = Running(item, worker.name, InterruptFlag())
        with self._cond:
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
        except WorkerLost as e:
            outcome = self._worker_lost(worker, item, run, e)
            if outcome is None:
                return
        except Exception as e:  # an engine bug must not take the server down: report it as a failed run
            log.exception("the engine raised while running prompt %s", item.prompt_id)
            outcome = self._failed(item, run, f"Loom failed to run this prompt: {e}", type(e).__name__,
                                   traceback.format_exception(e))
        finally:
            with self._cond:
                self._running.pop(item.prompt_id, None)
        try:
            if len(self._slots) > 1 or not isinstance(worker, LocalWorker):  # a lone local worker needs no affinity
                held = dict(worker.held_models())
                with self._cond:
                    self._set_held(slot, held)
        except Exception:
            log.exception("worker %s could not say which models it holds", worker.name)

        if self._stopping.is_set() and outcome.status == "interrupted":
            # Cut short by shutdown, not by the user: left as running, the next start files it as
            # "Loom stopped while this prompt was running", exactly like after a crash.
            log.warning("prompt %s was stopped by the shutdown", item.prompt_id)
            return
        status_str = "success" if outcome.status == "success" else "error"
        history = history_item(item, outcome.outputs, status_str, outcome.messages, outcome.meta)
        history["loom"] = {"worker": worker.name, "attempts": item.attempts + 1}
        self.queue.done(item, history)
        if client_id is not None:
            self.hub.post("executing", {"node": None, "prompt_id": item.prompt_id}, client_id)
        log.info("prompt %s finished on %s: %s in %.2fs (%d outputs)", item.prompt_id, worker.name, outcome.status,
                 time.monotonic() - started, len(outcome.outputs))

    def _worker_lost(self, worker: Worker, item: QueueItem, run: Running, error: WorkerLost) -> RunOutcome | None:
        """Requeue the run at the front (None), or fail it when this was its last attempt."""
        if item.attempts + 1 < MAX_ATTEMPTS and not self._stopping.is_set() and not run.interrupt.is_set():
            log.warning("worker %s was lost while running prompt %s (%s); the prompt goes back to the front of "
                        "the queue", worker.name, item.prompt_id, error)
            self.queue.requeue_front(item)
            if item.client_id is not None:
                self.hub.post("loom_requeued", {"prompt_id": item.prompt_id, "worker": worker.name,
                                                "reason": str(error)}, item.client_id)
            return None
        if run.interrupt.is_set():
            message = f"Interrupted, and worker {worker.name} was lost while stopping: {error}"
        else:
            message = (f"Worker {worker.name} was lost while running this prompt ({error}); it had been tried "
                       f"{item.attempts + 1} times, so Loom gave up on it")
        log.error("prompt %s failed: %s", item.prompt_id, message)
        return self._failed(item, run, message, "WorkerLost", [])

    def _failed(self, item: QueueItem, run: Running, message: str, exc_type: str, tb: list[str]) -> RunOutcome:
        error = {"prompt_id": item.prompt_id, "node_id": run.last_node or "", "node_type": "", "executed": [],
                 "exception_message": message, "exception_type": exc_type, "traceback": tb,
                 "current_inputs": {}, "current_outputs": [], "timestamp": timestamp_ms()}
        self.hub.post_engine_event("execution_error", error, item.client_id)
        return RunOutcome("error", messages=[
            ("execution_start", {"prompt_id": item.prompt_id, "timestamp": item.start_time}),
            ("execution_error", error)])
