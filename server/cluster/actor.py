"""The worker that runs in a Ray actor: one engine, one model manager, one output cache, on one GPU
(or a set of CPUs) of some machine of the cluster.

It knows nothing of HTTP. `run` is a streaming generator: it yields the engine's events as they
happen (previews already JPEG-encoded, each `executed` event with the files its ui names) and last a
`done` message with the outcome. Control calls (`interrupt`, `ping`, `stats`) run beside a run on the
actor's other threads. This module is imported on every machine of the cluster, so Loom must be
installed there too (the same version: the server checks).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("loom.worker")

# Set on a machine to keep its models or data folders at another place than the server does.
MODELS_DIR_ENV = "LOOM_WORKER_MODELS_DIR"
DATA_DIR_ENV = "LOOM_WORKER_DATA_DIR"


class WorkerBusy(RuntimeError):
    """Another run holds this worker (a second server shares the Ray namespace, or an orphaned run
    from a server that died has not stopped yet)."""


class LoomWorker:
    """Built from `settings`: the server's `ServeConfig` fields in `config`, plus `name`, `models_dir`,
    `env` and `cpu_threads`. The engine is a `LocalWorker`, exactly as `loom serve --workers local` has."""

    def __init__(self, settings: dict):
        for name, value in (settings.get("env") or {}).items():
            os.environ[name] = str(value)
        threads = settings.get("cpu_threads")
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)
            import torch

            torch.set_num_threads(int(threads))
        from nodes import paths
        from server.cli_serve import apply_fast, build_registry
        from server.config import ServeConfig
        from server.context import make_cache
        from server.dispatcher import LocalWorker

        self.name = settings["name"]
        data_dir = os.environ.get(DATA_DIR_ENV) or settings.get("data_dir")
        data_dir = Path(data_dir) / self.name if data_dir else Path.home() / ".cache" / "loom" / "workers" / self.name
        models_dir = os.environ.get(MODELS_DIR_ENV) or settings.get("models_dir")
        self.folders = paths.configure(data_dir, models_dir)
        config = ServeConfig(**settings.get("config", {}))
        self.registry = build_registry(config)
        apply_fast(config)
        self.engine = LocalWorker(self.registry, make_cache(config), self.name)
        self.executor = self.engine.executor
        self._run_lock = threading.Lock()
        self._current: tuple[str, object] | None = None  # (prompt_id, InterruptFlag)
        self.started = time.time()

    # -- control ----------------------------------------------------------------------------------
    def ping(self) -> int:
        """This process's id: a different one means Ray restarted the worker (its caches are empty)."""
        return os.getpid()

    def info(self) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        return {"name": self.name, "pid": os.getpid(), "host": socket.gethostname(), "node_id": ctx.get_node_id(),
                "data_dir": str(self.folders.data_dir), "models_dirs": [str(p) for p in self.folders.models_dirs],
                "started": self.started}

    def manifest(self) -> dict:
        from server.cluster.manifest import make_manifest

        return make_manifest(self.registry)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        current = self._current
        if current is None or (prompt_id is not None and current[0] != prompt_id):
            return False
        current[1].set()
        return True

    def free(self, unload_models: bool, free_memory: bool) -> None:
        self.engine.free(unload_models, free_memory)

    def stats(self) -> dict:
        from server.affinity import loaded_model_files

        return {"cache": self.executor.cache.stats(), "models": loaded_model_files(),
                "running": self._current[0] if self._current else None}

    # -- running ----------------------------------------------------------------------------------
    def run(self, job: dict) -> Iterator[dict]:
        """Run one prompt, yielding {"event", "data"[, "files"]} messages and a final {"done": outcome}."""
        from nodes.context import InterruptFlag

        if not self._run_lock.acquire(timeout=float(job.get("busy_wait", 30.0))):
            raise WorkerBusy(f"worker {self.name} is still running prompt "
                             f"{self._current[0] if self._current else '?'}")
        try:
            flag = InterruptFlag()
            self._current = (job["prompt_id"], flag)
            from server.cluster.files import write_files

            write_files(job.get("files") or {})
            yield from self._stream(job, flag)
        finally:
            self._current = None
            self._run_lock.release()

    def _stream(self, job: dict, flag) -> Iterator[dict]:
        from server.cluster.files import read_ui_files
        from server.previews import encode_image

        events: queue.SimpleQueue = queue.SimpleQueue()

        def work() -> None:
            try:
                result = self.executor.execute(job["prompt"], job["prompt_id"], extra_data=job.get("extra_data"),
                                               execute_outputs=job.get("outputs"), on_event=events.put,
                                               interrupt=flag)
                events.put(("done", result))
            except BaseException as e:  # handed to the server as the run's failure
                events.put(("raised", e))

        thread = threading.Thread(target=work, name=f"loom-run-{job['prompt_id']}", daemon=True)
        thread.start()
        try:
            yield from self._relay(events, encode_image, read_ui_files)
        finally:  # the server stopped listening (or the run ended): the engine must stop before the next run
            if thread.is_alive():
                flag.set()
                thread.join()

    def _relay(self, events: queue.SimpleQueue, encode_image, read_ui_files) -> Iterator[dict]:
        while True:
            message = events.get()
            if isinstance(message, tuple):
                if message[0] == "raised":
                    raise message[1]
                result = message[1]
                from server.affinity import loaded_model_files

                yield {"done": {"status": result.status, "outputs": dict(result.outputs or {}),
                                "messages": list(result.messages or []), "meta": dict(result.meta or {}),
                                "models": loaded_model_files(), "cache": self.executor.cache.stats()}}
                return
            data = message.data
            if message.type == "preview":
                encoded = encode_image(data.get("image") if not data.get("format")
                                       else (data["format"], data.get("image"), data.get("max_size") or 512))
                if encoded is None:
                    continue
                data = {k: v for k, v in data.items() if k not in ("image", "format", "max_size")}
                data.update(image=encoded[1], format=encoded[0])
                yield {"event": "preview", "data": data}
            elif message.type == "executed":
                yield {"event": "executed", "data": data, "files": read_ui_files(data.get("output") or {})}
            else:
                yield {"event": message.type, "data": data}
