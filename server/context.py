"""Everything a running server holds, built once by `build_context` and shared by the route modules."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config import ServeConfig
from server.dispatcher import Dispatcher, LocalWorker, Worker
from server.logbuffer import LogBuffer
from server.prompt_queue import PromptQueue
from server.store import Store
from server.ws_hub import Hub

log = logging.getLogger("loom.server")

STOPPED_MESSAGE = "Loom stopped while this prompt was running"


@dataclass
class ServerContext:
    config: ServeConfig
    registry: Any  # nodes.registry.NodeRegistry
    folders: Any  # nodes.paths.Folders
    store: Store
    queue: PromptQueue
    hub: Hub
    dispatcher: Dispatcher
    logs: LogBuffer
    started_at: float = field(default_factory=time.time)

    app: Any = None  # the aiohttp Application, once built
    pool: Any = None  # server.cluster.pool.RayPool with --workers ray

    # -- what node packs read through server.PromptServer.instance (server/compat_bridge.py) --------
    @property
    def loop(self):
        return self.hub.loop

    def _first_running(self):
        running = self.dispatcher.running()
        return running[0] if running else None

    @property
    def client_id(self) -> str | None:
        run = self._first_running()
        return run.item.client_id if run else None

    @property
    def last_node_id(self) -> str | None:
        run = self._first_running()
        return run.last_node if run else None

    @property
    def last_prompt_id(self) -> str | None:
        run = self._first_running()
        return run.item.prompt_id if run else None

    def queue_updated(self) -> None:
        self.hub.post_status()

    @property
    def prompt_queue(self) -> ComfyQueueView:
        return ComfyQueueView(self.queue, self.store)

    @property
    def user_root(self) -> Path:
        return Path(self.folders.user_dir)

    def send_sync(self, event: str, data: dict, sid: str | None = None) -> None:
        """Send a WebSocket message from any thread (what packs call PromptServer.send_sync for)."""
        self.hub.post(event, data, sid)

    def start_workers(self) -> None:
        self.dispatcher.start()
        if self.pool is not None:
            self.pool.start()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        self.dispatcher.stop()
        self.store.close()


class ComfyQueueView:
    """The calls packs make on ComfyUI's `PromptServer.instance.prompt_queue`, over Loom's queue."""

    def __init__(self, queue: PromptQueue, store: Store):
        self._queue, self._store = queue, store

    def get_current_queue(self) -> tuple[list, list]:
        running, pending = self._queue.snapshot()
        return [i.as_tuple() for i in running], [i.as_tuple() for i in pending]

    get_current_queue_volatile = get_current_queue

    def get_tasks_remaining(self) -> int:
        return self._queue.remaining()

    def wipe_queue(self) -> None:
        self._queue.delete(None)

    def delete_queue_item(self, function) -> bool:
        _, pending = self._queue.snapshot()
        return bool(self._queue.delete([i.prompt_id for i in pending if function(i.as_tuple())][:1]))

    def get_history(self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1) -> dict:
        if prompt_id is not None:
            item = self._store.history_get(prompt_id)
            return {prompt_id: item} if item is not None else {}
        return self._store.history_page(max_items, offset)

    def wipe_history(self) -> None:
        self._store.history_delete(None)

    def delete_history_item(self, id_to_delete: str) -> None:
        self._store.history_delete([id_to_delete])


def make_cache(config: ServeConfig):
    """The executor's cache for --cache-none / --cache-ram GB (None: the engine's default)."""
    from engine import cache

    if config.cache_none:
        return cache.NullCache()
    if config.cache_ram_gb is not None:
        return cache.LRUCache(int(config.cache_ram_gb * 1024**3))
    return None


# Settings of this process that workers on other machines must run with too.
FORWARDED_ENV = ("LOOM_DEVICE", "LOOM_LOW_VRAM", "LOOM_DTYPE", "LOOM_VRAM_BUDGET_GB", "LOOM_RAM_BUDGET_GB",
                 "LOOM_ALLOW_PICKLE_CHECKPOINTS", "LOOM_COMPILE_MODE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def make_pool(config: ServeConfig, registry, folders):
    """Join the Ray cluster for --workers ray (raises ClusterError when that fails)."""
    import os

    from server.cluster.manifest import make_manifest
    from server.cluster.pool import RayPool, parse_workers_option

    _, address = parse_workers_option(config.workers)
    # What a worker builds its engine from (server/cluster/actor.py): the same config fields as here.
    engine_config = {name: getattr(config, name) for name in ("custom_nodes_allow", "disable_custom_nodes",
                                                              "cache_ram_gb", "cache_none", "fast")}
    settings = {"models_dir": str(folders.models_dirs[0]), "config": engine_config,
                "env": {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}}
    pool = RayPool(address, config.ray_namespace, settings, make_manifest(registry), config.worker_cpus)
    pool.connect()
    return pool


def build_context(config: ServeConfig, registry, workers: list[Worker] | None = None,
                  logs: LogBuffer | None = None) -> ServerContext:
    """Open the store, recover from an unclean stop, and make the workers (started by `start_workers`)."""
    from nodes import paths
    from server.affinity import models_in_prompt

    folders = paths.configure(config.data_dir, config.models_dir)
    pool = None
    if workers is None and config.workers != "local":
        pool = make_pool(config, registry, folders)
    store = Store(folders.data_dir, max_history=config.max_history)
    # Ray workers outlive the server: a run cut short by its stop goes back to the queue once.
    failed = store.recover(STOPPED_MESSAGE, int(time.time() * 1000), retry=pool is not None)
    for pid in failed:
        log.warning("prompt %s was running when Loom stopped; marked failed", pid)
    queue = PromptQueue(store)
    pending = queue.remaining()
    if pending:
        log.info("%d prompt(s) still queued from the last session", pending)
    hub = Hub(config.ws_queue_size, config.ws_stall_seconds)
    hub.queue_remaining = queue.remaining
    queue.on_change = hub.post_status
    if workers is None:
        workers = [] if pool is not None else [LocalWorker(registry, make_cache(config))]
    dispatcher = Dispatcher(queue, hub, workers, models_of=models_in_prompt)
    if pool is not None:
        pool.on_add, pool.on_remove, pool.on_ready = dispatcher.add_worker, dispatcher.remove_worker, \
            dispatcher.worker_ready
    return ServerContext(config=config, registry=registry, folders=folders, store=store, queue=queue, hub=hub,
                         dispatcher=dispatcher, logs=logs or LogBuffer(), pool=pool)
