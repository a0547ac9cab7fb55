"""The cluster mode's parts on their own, without Ray: hand-out by model affinity, manifests, files that
travel, slot planning, options, and the queue's requeue and restart rules."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from engine.events import Event
from server.cluster.files import OutputReceiver, prompt_input_files, rename_in_ui, write_files
from server.cluster.manifest import differences
from server.cluster.pool import parse_workers_option, plan_slots
from server.dispatcher import Dispatcher, RunOutcome, WorkerLost, _Slot, choose_worker
from server.jobs import QueueItem
from server.prompt_queue import PromptQueue
from server.store import Store
from server.ws_hub import Hub
from tests.shared_helpers import REPO


# -- hand-out -------------------------------------------------------------------------------------------
class _Named:
    def __init__(self, name):
        self.name = name


def test_choose_worker_prefers_model_bytes_then_least_recently_used():
    a, b, c = (_Slot(_Named(n)) for n in "abc")
    a.last_used, b.last_used, c.last_used = 3.0, 1.0, 2.0
    assert choose_worker([a, b, c], set()).worker.name == "b"  # nothing wanted: least recently used
    a.held = {"big.safetensors": 4_000, "lora.safetensors": 10}
    c.held = {"lora.safetensors": 10, "other.safetensors": 9_000}
    assert choose_worker([a, b, c], {"big.safetensors", "lora.safetensors"}).worker.name == "a"
    assert choose_worker([a, b, c], {"lora.safetensors"}).worker.name == "c"  # tie on bytes: c is older than a
    assert choose_worker([a, b, c], {"unheld.safetensors"}).worker.name == "b"


# -- manifests -------------------------------------------------------------------------------------------
def _manifest(**over):
    base = {"loom_version": "0.1.0", "models": {"checkpoints": {"a.safetensors": 10, "b.safetensors": 20}},
            "packs": {"pack": "1.0+abc"}, "node_types": ["A", "B"]}
    return {**base, **over}


def test_manifest_differences_name_what_differs():
    assert differences(_manifest(), _manifest()) == []
    extra = _manifest(models={"checkpoints": {"a.safetensors": 10, "b.safetensors": 20, "c.safetensors": 1}})
    assert differences(_manifest(), extra) == []  # more models on a worker harm nobody
    problems = differences(_manifest(), _manifest(models={"checkpoints": {"a.safetensors": 11}},
                                                  packs={"pack": "1.1+def", "more": "2+x"}, loom_version="0.2.0"))
    text = "; ".join(problems)
    assert "Loom 0.2.0 there, 0.1.0 here" in text
    assert "models missing there: checkpoints/b.safetensors" in text
    assert "checkpoints/a.safetensors (11 bytes there, 10 here)" in text
    assert "node packs only there: more 2+x" in text and "pack (1.1+def there, 1.0+abc here)" in text
    assert differences(_manifest(), _manifest(node_types=["A"])) == ["node types missing there: B"]


# -- files -------------------------------------------------------------------------------------------
def test_input_files_of_a_prompt_and_writing_them_elsewhere(data_dirs, tmp_path):
    (data_dirs.input_dir / "sub").mkdir()
    (data_dirs.input_dir / "sub" / "pic.png").write_bytes(b"png-bytes")
    (data_dirs.output_dir / "made.png").write_bytes(b"out-bytes")
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "sub/pic.png", "upload": "image"}},
              "2": {"class_type": "LoadImage", "inputs": {"image": "made.png [output]"}},
              "3": {"class_type": "X", "inputs": {"text": "../../etc/passwd", "link": ["1", 0], "n": 3}}}
    files = prompt_input_files(prompt)
    assert files == {("input", "sub", "pic.png"): b"png-bytes", ("output", "", "made.png"): b"out-bytes"}

    from nodes import paths

    other = paths.configure(data_dir=tmp_path / "worker", models_dir=tmp_path / "models")
    write_files(files)
    assert (other.input_dir / "sub" / "pic.png").read_bytes() == b"png-bytes"
    with pytest.raises(paths.UnsafePath):
        write_files({("input", "..", "evil.png"): b"x"})


def test_output_receiver_keeps_names_renumbers_clashes_and_remembers(data_dirs):
    receiver = OutputReceiver()
    ref = ("output", "", "Loom_00001_.png")
    assert receiver.receive("w1", [(ref, b"first")]) == {}
    assert receiver.receive("w1", [(ref, b"first")]) == {}  # the same file again (a cached node)
    renames = receiver.receive("w2", [(ref, b"second")])
    assert renames == {ref: "Loom_00002_.png"}
    assert receiver.receive("w2", [(ref, b"second")]) == renames  # remembered, not copied a third time
    assert sorted(p.name for p in data_dirs.output_dir.iterdir()) == ["Loom_00001_.png", "Loom_00002_.png"]
    other = ("temp", "", "notes.txt")
    assert receiver.receive("w1", [(other, b"a")]) == {}
    assert receiver.receive("w2", [(other, b"b")]) == {other: "notes-2.txt"}
    ui = {"images": [{"filename": "Loom_00001_.png", "subfolder": "", "type": "output"}], "text": ["hi"]}
    assert rename_in_ui(ui, renames)["images"][0]["filename"] == "Loom_00002_.png"
    from nodes.paths import UnsafePath

    with pytest.raises(UnsafePath):
        receiver.receive("w1", [(("output", "../..", "x.png"), b"x")])


# -- planning and options -------------------------------------------------------------------------------
def test_plan_slots_one_per_gpu_or_per_n_cpus():
    nodes = [{"NodeID": "a" * 40, "Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}},
             {"NodeID": "b" * 40, "Alive": True, "Resources": {"CPU": 8.0}},
             {"NodeID": "c" * 40, "Alive": False, "Resources": {"CPU": 8.0}}]
    slots = plan_slots(nodes, None)
    assert [(s.name, s.num_gpus, s.num_cpus) for s in slots] == [
        ("loom-aaaaaaaaaaaa-gpu0", 1, 1), ("loom-aaaaaaaaaaaa-gpu1", 1, 1), ("loom-bbbbbbbbbbbb-cpu0", 0, 8)]
    assert [s.num_cpus for s in plan_slots(nodes[1:], 3)] == [3, 3]


def test_parse_workers_option():
    assert parse_workers_option("local") == ("local", None)
    assert parse_workers_option("ray") == ("ray", None)
    assert parse_workers_option("ray:auto") == ("ray", "auto")
    assert parse_workers_option("ray:10.0.0.5:6379") == ("ray", "10.0.0.5:6379")
    with pytest.raises(ValueError, match="--workers"):
        parse_workers_option("dask")


def test_serve_refuses_a_bad_workers_option_and_local_mode_never_imports_ray(tmp_path):
    r = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--workers", "celery", "--data-dir",
                        str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--workers must be" in r.stderr
    code = ("import sys; from server.config import ServeConfig; from server.context import build_context; "
            "from nodes.registry import builtin_registry; "
            f"ctx = build_context(ServeConfig(data_dir={str(tmp_path)!r}), builtin_registry()); "
            "ctx.start_workers(); ctx.close(); assert 'ray' not in sys.modules, 'ray was imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# -- the queue's requeue and restart rules ----------------------------------------------------------------
def _item(pid: str, number: float = 1) -> QueueItem:
    return QueueItem(number=number, prompt_id=pid, prompt={}, extra_data={}, outputs=[], create_time=1)


def test_requeue_front_counts_attempts_and_survives_a_restart(tmp_path):
    store = Store(tmp_path)
    queue = PromptQueue(store)
    for pid in ("a", "b"):
        queue.put(_item(pid, queue.next_number(False)))
    taken = queue.take(0)
    assert taken.prompt_id == "a"
    queue.requeue_front(taken)
    running, pending = queue.snapshot()
    assert running == [] and [i.prompt_id for i in pending] == ["a", "b"] and pending[0].attempts == 1
    assert queue.take(0).prompt_id == "a"
    store.close()

    # Restarted with workers that outlived the server: "a" was retried already, so it is failed...
    store = Store(tmp_path)
    assert store.recover("stopped", 5, retry=True) == ["a"]
    assert store.history_get("a")["status"]["status_str"] == "error"
    queue = PromptQueue(store)
    assert queue.take(0).prompt_id == "b"
    store.close()
    # ...while "b", cut short for the first time, goes back to the front with its attempt counted
    store = Store(tmp_path)
    assert store.recover("stopped", 5, retry=True) == []
    queue = PromptQueue(store)
    queue.put(_item("c", queue.next_number(False)))
    assert [(i.prompt_id, i.attempts) for i in queue.snapshot()[1]] == [("b", 1), ("c", 0)]
    store.close()
    # in local mode (no retry) a cut-short run is always failed
    store = Store(tmp_path)
    PromptQueue(store).take(0)
    store.close()
    store = Store(tmp_path)
    assert store.recover("stopped", 5) == ["b"]
    store.close()


def test_a_schema_1_database_is_migrated(tmp_path):
    db = sqlite3.connect(tmp_path / "loom.sqlite3")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE queue (prompt_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, number REAL NOT NULL,
            state TEXT NOT NULL, prompt TEXT NOT NULL, extra_data TEXT NOT NULL, outputs TEXT NOT NULL,
            create_time INTEGER NOT NULL, start_time INTEGER, workflow_id TEXT);
        INSERT INTO queue VALUES ('old', 1, 1, 'pending', '{}', '{}', '[]', 1, NULL, NULL);
    """)
    db.commit()
    db.close()
    store = Store(tmp_path)
    [(state, item)] = store.load_queue()
    assert (state, item.prompt_id, item.attempts) == ("pending", "old", 0)
    store.close()


class _DyingWorker:
    """Stands in for a remote worker whose machine dies during every run (the real one is in the Ray tests)."""

    def __init__(self, name: str):
        self.name = name
        self.calls = []

    def execute(self, item, on_event, interrupt):
        self.calls.append(item.attempts)
        on_event(Event("execution_start", {"prompt_id": item.prompt_id, "timestamp": 1}))
        raise WorkerLost("the node went away")

    def interrupt(self, prompt_id):
        pass

    def free(self, unload_models, free_memory):
        pass

    def stats(self):
        return {}

    def held_models(self):
        return {}

    def is_ready(self):
        return True


def test_the_dispatcher_requeues_a_lost_run_once_then_fails_it(tmp_path):
    store = Store(tmp_path)
    queue = PromptQueue(store)
    hub = Hub(16, 5)
    sent = []
    hub.post = lambda event, data, sid=None: sent.append(event)
    hub.post_engine_event = lambda event, data, sid=None: sent.append(event)
    worker = _DyingWorker("far")
    dispatcher = Dispatcher(queue, hub, [worker])
    dispatcher.start()
    try:
        queue.put(QueueItem(number=1, prompt_id="p", prompt={}, extra_data={"client_id": "c"}, outputs=[],
                            create_time=1))
        deadline = time.monotonic() + 10
        while store.history_get("p") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        history = store.history_get("p")
        assert worker.calls == [0, 1]
        assert history["status"]["status_str"] == "error" and history["loom"]["attempts"] == 2
        error = history["status"]["messages"][-1][1]["exception_message"]
        assert "Worker far was lost" in error and "tried 2 times" in error
        assert sent.count("loom_requeued") == 1 and "execution_error" in sent
    finally:
        dispatcher.stop()
        store.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("loom-worker-far") and t.is_alive()]


class _RecordingWorker(_DyingWorker):
    """Finishes every run at once and holds one model."""

    def __init__(self, name: str, model: str | None):
        super().__init__(name)
        self.held = {model: 1_000} if model else {}

    def execute(self, item, on_event, interrupt):
        self.calls.append(item.prompt_id)
        return RunOutcome("success")

    def held_models(self):
        return self.held


def test_the_hand_out_among_many_workers_follows_models_then_least_recently_used(tmp_path):
    store = Store(tmp_path)
    queue = PromptQueue(store)
    workers = [_RecordingWorker(f"w{i}", f"m{i}.safetensors" if i < 50 else None) for i in range(200)]
    dispatcher = Dispatcher(queue, Hub(16, 5), workers, models_of=lambda p: {p["1"]["inputs"]["ckpt_name"]})
    dispatcher.start()
    try:
        def run(pid: str, model: str) -> None:
            queue.put(QueueItem(number=queue.next_number(False), prompt_id=pid, outputs=["1"], create_time=1,
                                prompt={"1": {"class_type": "X", "inputs": {"ckpt_name": model}}}, extra_data={}))
            deadline = time.monotonic() + 10
            while store.history_get(pid) is None and time.monotonic() < deadline:
                time.sleep(0.005)

        run("a", "m7.safetensors")
        run("b", "m42.safetensors")
        run("c", "nobody-has-it.safetensors")
        run("d", "also-nobody.safetensors")
        assert workers[7].calls == ["a"] and workers[42].calls == ["b"]
        # no holder: the least recently used, i.e. never used, in the order they joined
        assert workers[0].calls == ["c"] and workers[1].calls == ["d"]
    finally:
        dispatcher.stop()
        store.close()


# -- the one test here with Ray: it must run while no other cluster runs on this machine, which
# `--workers ray` would join ----------------------------------------------------------------------
def test_workers_ray_without_an_address_starts_a_cluster_of_this_machine_on_loopback(tmp_path, monkeypatch):
    import psutil
    import requests
    from cluster_support import CLUSTER_ENV

    from tests.server.srv_helpers import sleep_graph, wait_history
    from tests.shared_helpers import ServeProcess

    env = {**CLUSTER_ENV, "HOME": str(tmp_path / "home"), "LOOM_WORKER_DATA_DIR": str(tmp_path / "workers")}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # Loom must keep the cluster on loopback by itself
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    server = ServeProcess([sys.executable, "-m", "server.cli"], "--data-dir", str(tmp_path / "data"),
                          "--workers", "ray", "--ray-namespace", "solo", env=env)
    try:
        server.wait_ready(120)
        deadline = time.monotonic() + 120
        workers = {}
        while time.monotonic() < deadline and not any(w.get("ready") for w in workers.values()):
            workers = requests.get(server.url + "/api/loom/stats", timeout=30).json()["workers"]
            time.sleep(0.5)
        assert len(workers) == 1, workers
        done = wait_history(server.url, requests.post(server.url + "/api/prompt", timeout=30, json={
            "prompt": sleep_graph(seconds=0.2, steps=2)}).json()["prompt_id"], 60)
        assert done["status"]["status_str"] == "success"
        tree = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]
        listening = set()
        for process in tree:
            try:
                listening |= {c.laddr.ip for c in process.net_connections("inet") if c.status == "LISTEN"}
            except psutil.NoSuchProcess:
                continue
        assert listening and all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip in listening), listening
    finally:
        server.stop()
    assert server.wait_exit() == 0
