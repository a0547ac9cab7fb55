"""`RayPool`: Loom's workers on a Ray cluster: one detached, named actor per GPU (or per N CPUs).

The pool joins the cluster as a driver, creates or re-attaches to a worker for every slot of every
live node (names are stable: `loom-<node id>-<slot>`, in the server's Ray namespace, so a restarted
server finds the workers it left running), checks each one's manifest against the server's and refuses
a worker whose models or node packs differ. A watcher thread keeps the set current: new nodes get
workers, a worker that died comes back into the hand-out once Ray restarted it and it passed the check
again, a worker whose node is gone is dropped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from server.cluster.files import OutputReceiver
from server.cluster.manifest import differences
from server.cluster.remote_worker import RayWorker, short_error
from server.config import is_loopback_host

log = logging.getLogger("loom.cluster")

ATTACH_TIMEOUT = 300.0  # a new actor imports torch and loads the node packs before it answers
WATCH_EVERY = 2.0


class ClusterError(RuntimeError):
    """The cluster could not be joined (wrong address, Ray missing, ...)."""


@dataclass
class Slot:
    name: str
    node_id: str
    host: str
    num_gpus: float
    num_cpus: float


def parse_workers_option(value: str) -> tuple[str, str | None]:
    """`local` -> ("local", None); `ray` -> ("ray", None); `ray:auto` / `ray:HOST:PORT` -> ("ray", address)."""
    value = (value or "local").strip()
    if value == "local":
        return "local", None
    kind, _, address = value.partition(":")
    if kind != "ray":
        raise ValueError(f"--workers must be 'local', 'ray' or 'ray:ADDRESS', not {value!r}")
    return "ray", address or None


def plan_slots(nodes: list[dict], worker_cpus: int | None) -> list[Slot]:
    """One slot per GPU; a node without GPUs gets one per `worker_cpus` CPUs (one for all when None)."""
    slots = []
    for node in nodes:
        if not node.get("Alive"):
            continue
        resources = node.get("Resources") or {}
        node_id, host = node["NodeID"], node.get("NodeManagerAddress", "")
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        if gpus:
            per_gpu_cpus = max(1, cpus // gpus) if cpus else 0
            slots += [Slot(f"loom-{node_id[:12]}-gpu{i}", node_id, host, 1, min(1, per_gpu_cpus))
                      for i in range(gpus)]
        elif cpus:
            each = min(worker_cpus or cpus, cpus)
            slots += [Slot(f"loom-{node_id[:12]}-cpu{i}", node_id, host, 0, each) for i in range(cpus // each)]
    return slots


def _host_port(address: str | None) -> tuple[str | None, int | None]:
    """("10.0.0.5", 6379) from "10.0.0.5:6379"; (None, None) for None, "auto" and ray:// client addresses."""
    if not address or address == "auto" or "://" in address:
        return None, None
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]") or None, int(port)
    except ValueError:
        return address, None


def _check_reachable(host: str, port: int, timeout: float = 5.0) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise ClusterError(f"no Ray cluster answers at {host}:{port} ({e.strerror or e}); start one with "
                           f"`ray start --head` or pass its address as --workers ray:HOST:PORT") from None


class RayPool:
    def __init__(self, address: str | None, namespace: str, settings: dict, server_manifest: dict,
                 worker_cpus: int | None = None):
        self.address = address
        self.namespace = namespace
        self.settings = settings  # what every actor is built with (see actor.LoomWorker)
        self.server_manifest = server_manifest
        self.worker_cpus = worker_cpus
        self.receiver = OutputReceiver()
        self.workers: dict[str, RayWorker] = {}
        self.refused: dict[str, str] = {}  # slot name -> why
        self.on_add: Callable[[RayWorker], None] = lambda w: None
        self.on_remove: Callable[[str], None] = lambda name: None
        self.on_ready: Callable[[RayWorker], None] = lambda w: None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attaching: set[str] = set()
        self._lock = threading.Lock()

    # -- joining ----------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster (or start a local one when no address was given and RAY_ADDRESS is unset)."""
        host, port = _host_port(self.address)
        if (self.address is None and not os.environ.get("RAY_ADDRESS")) or is_loopback_host(host):
            # A cluster of this machine alone needs no routable address: keep Ray's ports on loopback.
            # (Ray reads this when it is first imported.)
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if host is not None and port is not None:
            _check_reachable(host, port)  # Ray itself retries an unreachable address for minutes
        try:
            import ray
        except ImportError as e:
            raise ClusterError("--workers ray needs Ray: pip install 'loom[ray]'") from e
        # No address: a new cluster of this machine, even if another runs here ("local"), unless
        # RAY_ADDRESS names one.
        address = self.address or (None if os.environ.get("RAY_ADDRESS") else "local")
        try:
            ray.init(address=address, namespace=self.namespace, ignore_reinit_error=True,
                     include_dashboard=False if self.address is None else None, log_to_driver=True,
                     configure_logging=False)
        except Exception as e:
            raise ClusterError(f"could not join the Ray cluster at {self.address or 'a new local cluster'}: {e}") from e

    def start(self) -> None:
        """Attach to every slot now (in the background) and keep watching."""
        self._thread = threading.Thread(target=self._watch, name="loom-cluster-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; the workers keep running (a restarted server re-attaches to them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- the watcher ------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:
                log.exception("looking at the Ray cluster failed")
            self._stop.wait(WATCH_EVERY)

    def reconcile(self) -> None:
        import ray

        self._check_ready_workers()
        slots = {s.name: s for s in plan_slots(ray.nodes(), self.worker_cpus)}
        for name in list(self.workers):
            if name not in slots:  # its node left the cluster
                log.warning("worker %s is gone with its node; dropped", name)
                self._drop(name)
        for name, slot in slots.items():
            worker = self.workers.get(name)
            if worker is None and name not in self.refused:
                self._attach_later(slot)
            elif worker is not None and not worker.ready and worker.state == "restarting":
                self._attach_later(slot)

    def _check_ready_workers(self) -> None:
        """Ping the workers in the hand-out: one that died or was restarted while idle leaves it until it
        is attached (and checked) again, instead of failing the next run given to it."""
        import ray
        from ray.exceptions import RayError

        pings = {w.actor.ping.remote(): w for w in list(self.workers.values()) if w.ready}
        if not pings:
            return
        answered, _ = ray.wait(list(pings), num_returns=len(pings), timeout=WATCH_EVERY)
        for ref in answered:  # a worker too slow to answer is left alone this time
            worker = pings[ref]
            try:
                pid = ray.get(ref)
            except RayError as e:  # dead, or its node is gone (ActorUnschedulableError)
                log.warning("worker %s is not answering: %s", worker.name, short_error(e))
                worker.mark_lost(e)
                continue
            if pid != worker.info.get("pid"):
                log.warning("worker %s was restarted (pid %s, was %s)", worker.name, pid, worker.info.get("pid"))
                worker.mark_lost(RuntimeError("restarted by Ray"))

    def _attach_later(self, slot: Slot) -> None:
        with self._lock:
            if slot.name in self._attaching:
                return
            self._attaching.add(slot.name)
        threading.Thread(target=self._attach, args=(slot,), name=f"loom-attach-{slot.name}", daemon=True).start()

    def _attach(self, slot: Slot) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from server.cluster.actor import LoomWorker

        try:
            actor = ray.remote(LoomWorker).options(
                name=slot.name, namespace=self.namespace, lifetime="detached", get_if_exists=True,
                max_restarts=-1, max_task_retries=0, max_concurrency=8,
                num_cpus=slot.num_cpus, num_gpus=slot.num_gpus,
                scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=False),
            ).remote({**self.settings, "name": slot.name})
            existing = self.workers.get(slot.name)
            timeout = ATTACH_TIMEOUT if existing is None else 5.0
            info = ray.get(actor.info.remote(), timeout=timeout)
            # A worker that outlived a server may still run that server's last prompt: stop it.
            ray.get(actor.interrupt.remote(None), timeout=timeout)
            problems = differences(self.server_manifest, ray.get(actor.manifest.remote(), timeout=timeout))
            if problems:
                reason = (f"worker {slot.name} on {slot.host} (node {slot.node_id[:12]}) refused: it does not have "
                          f"what this server has: {'; '.join(problems)}")
                log.error("%s", reason)
                self.refused[slot.name] = reason
                self._drop(slot.name)
                ray.kill(actor)
                return
            stats = ray.get(actor.stats.remote(), timeout=timeout)
            if existing is not None:  # the same named actor, restarted by Ray
                existing.actor, existing.info = actor, info
                existing.update(stats)
                existing.state, existing.reason, existing.ready = "ready", None, True
                log.info("worker %s is back (pid %s)", slot.name, info.get("pid"))
                self.on_ready(existing)
                return
            worker = RayWorker(slot.name, actor, info, self.receiver)
            worker.update(stats)
            self.workers[slot.name] = worker
            log.info("worker %s ready on %s (node %s, pid %s)", slot.name, info.get("host"), slot.node_id[:12],
                     info.get("pid"))
            self.on_add(worker)
        except (GetTimeoutError, RayActorError) as e:
            log.warning("worker %s is not answering yet: %s", slot.name, short_error(e))
        except Exception:
            log.exception("starting worker %s failed", slot.name)
        finally:
            with self._lock:
                self._attaching.discard(slot.name)

    def _drop(self, name: str) -> None:
        worker = self.workers.pop(name, None)
        if worker is not None:
            worker.ready, worker.state = False, "dead"
            self.on_remove(name)

    # -- views ------------------------------------------------------------------------------------
    def stats(self) -> dict:
        return {"address": self.address or "local", "namespace": self.namespace, "refused": dict(self.refused)}

    def kill_workers(self) -> int:
        """Stop every worker of this namespace (`loom serve --workers ray` never does this on its own)."""
        import ray

        count = 0
        for entry in ray.util.list_named_actors(all_namespaces=True):
            if entry.get("namespace") == self.namespace and entry.get("name", "").startswith("loom-"):
                ray.kill(ray.get_actor(entry["name"], namespace=self.namespace))
                count += 1
        return count
