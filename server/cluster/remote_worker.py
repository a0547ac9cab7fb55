"""`RayWorker`: the dispatcher's `Worker` for an engine that runs in a Ray actor (server/cluster/actor.py).

`execute` sends the prompt with the input files it names, reads the actor's event stream, writes each
`executed` event's files into this server's folders before passing the event on, and turns a dead
actor into `WorkerLost` so the dispatcher can requeue the run. Everything `stats` and `held_models`
say comes from what the actor last reported: the HTTP side never waits on a remote call.
"""

from __future__ import annotations

import logging
import threading
import time

from engine.events import Event, EventSink
from nodes.context import InterruptFlag
from server.cluster.files import OutputReceiver, prompt_input_files, rename_in_ui
from server.dispatcher import RunOutcome, WorkerLost
from server.jobs import QueueItem

log = logging.getLogger("loom.cluster")


class RayWorker:
    def __init__(self, name: str, actor, info: dict, receiver: OutputReceiver):
        self.name = name
        self.actor = actor
        self.info = info  # pid, host, node_id, ... as the actor reported at attach time
        self.receiver = receiver
        self.ready = True
        self.state = "ready"  # ready | restarting | refused | dead
        self.reason: str | None = None
        self._held: dict[str, int] = {}
        self._cache: dict = {}
        self._lock = threading.Lock()

    # -- Worker protocol --------------------------------------------------------------------------
    def is_ready(self) -> bool:
        return self.ready

    def held_models(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def stats(self) -> dict:
        with self._lock:
            return {"kind": "ray", "state": self.state, "reason": self.reason, "node_id": self.info.get("node_id"),
                    "host": self.info.get("host"), "pid": self.info.get("pid"), "cache": dict(self._cache),
                    "models": dict(self._held)}

    def interrupt(self, prompt_id: str | None) -> None:
        self.actor.interrupt.remote(prompt_id)  # fire and forget: the run's stream shows the effect

    def free(self, unload_models: bool, free_memory: bool) -> None:
        import ray

        ray.get(self.actor.free.remote(unload_models, free_memory), timeout=120)
        self.update(ray.get(self.actor.stats.remote(), timeout=30))  # what it holds now, for the hand-out

    def execute(self, item: QueueItem, on_event: EventSink, interrupt: InterruptFlag) -> RunOutcome:
        import ray
        from ray.exceptions import ActorUnschedulableError, GetTimeoutError, RayActorError

        job = {"prompt_id": item.prompt_id, "prompt": item.prompt, "extra_data": item.run_extra_data(),
               "outputs": item.outputs, "files": prompt_input_files(item.prompt)}
        renames: dict = {}
        try:
            stream = self.actor.run.options(num_returns="streaming").remote(job)
            for ref in stream:
                message = ray.get(ref)
                if "done" in message:
                    return self._finish(message["done"], renames)
                event_type, data = message["event"], message["data"]
                if message.get("files"):
                    renames.update(self.receiver.receive(self.name, message["files"]))
                    data = {**data, "output": rename_in_ui(data.get("output") or {}, renames)}
                on_event(Event(event_type, data))
        except (RayActorError, ActorUnschedulableError, GetTimeoutError) as e:
            self.mark_lost(e)
            raise WorkerLost(short_error(e)) from e
        raise WorkerLost(f"worker {self.name} ended the run without a result")

    # -- bookkeeping --------------------------------------------------------------------------------
    def _finish(self, done: dict, renames: dict) -> RunOutcome:
        with self._lock:
            self._held = dict(done.get("models") or {})
            self._cache = dict(done.get("cache") or {})
        outputs = {node: rename_in_ui(ui, renames) for node, ui in (done.get("outputs") or {}).items()}
        return RunOutcome(done["status"], outputs, list(done.get("messages") or []), dict(done.get("meta") or {}))

    def update(self, stats: dict) -> None:
        with self._lock:
            self._held = dict(stats.get("models") or {})
            self._cache = dict(stats.get("cache") or {})

    def mark_lost(self, error: BaseException) -> None:
        """Take the worker out of the hand-out until the pool sees it answer again."""
        self.ready = False
        self.state = "restarting"
        self.reason = short_error(error)
        self.lost_at = time.monotonic()
        with self._lock:
            self._held = {}  # a restarted actor starts empty


def short_error(error: BaseException) -> str:
    """An exception's type and first line (Ray's messages run to many lines)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
