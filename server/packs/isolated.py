"""Isolated packs: each runs in its own process, behind proxy node classes in Loom's registry.

A pack installed with `--isolated` has a virtual environment in `custom_nodes/.venvs/<name>`
made without pip and without the system site-packages; a `.pth` file in it adds Loom's own
site-packages *after* the venv's, so the pack shares Loom's torch (never reinstalled) while its
own requirements, installed into the venv, win over Loom's versions inside that process only.

At load, Loom starts `server.packs.isolated_worker` with the venv's python, which imports the pack
and describes its nodes. Each remote node becomes a proxy class with the same V1 attributes;
calling it sends the inputs over a socket (tensors as safetensors bytes) and waits for the result,
passing progress on to Loom's events and an interrupt on to the pack. If the process dies, the
call fails with an error naming the pack and the exit code, Loom stays up, and the next call
starts a fresh process. Values that only exist in one process (MODEL, VAE, ...) cannot cross.
"""

from __future__ import annotations

import atexit
import collections
import inspect
import itertools
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes import context, paths
from server.packs import wire

log = logging.getLogger("loom.packs.isolated")

INTERRUPT_GRACE_S = 10.0  # after an interrupt, how long the pack may take to stop before it is killed
_processes: dict[str, PackProcess] = {}


class IsolatedPackError(RuntimeError):
    """A node of an isolated pack failed (in the pack, or because its process died)."""


def venv_dir(custom_nodes_dir: Path, name: str) -> Path:
    return custom_nodes_dir / ".venvs" / name


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


class PackProcess:
    """One isolated pack's process and the socket to it; requests are serialised by a lock."""

    def __init__(self, name: str, pack_path: Path, python: str, start_timeout: float = 60.0):
        self.name = name
        self.pack_path = pack_path
        self.python = python
        self.start_timeout = start_timeout
        self.lock = threading.RLock()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self.description: dict = {}
        self.pid: int | None = None
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def start(self) -> dict:
        with self.lock:
            self.stop()
            parent_sock, child_sock = socket.socketpair()
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            cmd = [self.python, "-m", "server.packs.isolated_worker", "--fd", str(child_sock.fileno()),
                   "--pack", str(self.pack_path), "--name", self.name]
            self.proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, env=env, pass_fds=[child_sock.fileno()],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            child_sock.close()
            self.sock = parent_sock
            threading.Thread(target=self._drain, args=(self.proc,), name=f"loom-isolated-out:{self.name}",
                             daemon=True).start()
            f = paths.folders()
            load = {"op": "load", "data_dir": str(f.data_dir), "models_dir": str(f.models_dirs[0]),
                    "extra": {k: [str(p) for p in v] for k, v in f.extra.items()}}
            message, value = self._request(load, None, timeout=self.start_timeout)
            self.pid = message.get("pid")
            self.description = value
            log.info("isolated pack %s runs in process %s", self.name, self.pid)
            return value

    def stop(self) -> None:
        proc, sock = self.proc, self.sock
        self.proc = self.sock = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _drain(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:  # type: ignore[union-attr]
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            log.debug("[%s] %s", self.name, line)

    def _crash_error(self, doing: str) -> IsolatedPackError:
        proc = self.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(2)
            except subprocess.TimeoutExpired:
                code = None
        tail = "\n".join(list(self.output)[-15:])
        self.stop()
        return IsolatedPackError(f"the process of isolated pack {self.name!r} exited (code {code}) while {doing}; "
                                 f"Loom keeps running and restarts it on the next call.\nLast output:\n{tail}")

    # -- requests -----------------------------------------------------------------------------------
    def _request(self, message: dict, payload: Any, timeout: float | None = None,
                 interrupt: context.InterruptFlag | None = None, doing: str = "answering Loom") -> tuple[dict, Any]:
        req_id = next(self._ids)
        message = dict(message, id=req_id)
        try:
            self.sock.sendall(wire.pack(message, payload))  # type: ignore[union-attr]
        except OSError as e:
            raise self._crash_error(doing) from e
        deadline = time.monotonic() + timeout if timeout else None
        interrupted_at: float | None = None
        while True:
            if interrupt is not None and interrupt.is_set() and interrupted_at is None:
                interrupted_at = time.monotonic()
                try:
                    self.sock.sendall(wire.pack({"op": "interrupt"}))  # type: ignore[union-attr]
                except OSError:
                    pass
            if interrupted_at is not None and time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
                self.stop()
                raise context.InterruptProcessing(f"isolated pack {self.name!r} did not stop in time and was killed")
            if deadline is not None and time.monotonic() > deadline:
                self.stop()
                raise IsolatedPackError(f"isolated pack {self.name!r} did not answer within {timeout:g} s "
                                        f"while {doing}; its process was stopped")
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if not ready:
                continue
            try:
                reply, blob = wire.recv(self.sock)  # type: ignore[arg-type]
            except (EOFError, OSError) as e:
                raise self._crash_error(doing) from e
            op = reply.get("op")
            if op == "progress":
                self._progress(reply, interrupt)
                continue
            if reply.get("id") != req_id:
                continue
            if op == "error":
                if reply.get("interrupted"):
                    raise context.InterruptProcessing(reply.get("message") or "Processing interrupted")
                raise IsolatedPackError(f"{reply.get('type')}: {reply.get('message')} (in isolated pack "
                                        f"{self.name!r})\nRemote traceback:\n{reply.get('traceback', '')}")
            return reply, wire.unpack_value(reply, blob)

    def _progress(self, reply: dict, interrupt: context.InterruptFlag | None) -> None:
        try:
            context.report_progress(reply.get("value", 0), reply.get("total", 0), None, reply.get("node_id") or None)
        except context.InterruptProcessing:
            if interrupt is not None:
                interrupt.set()  # the loop above forwards it to the pack

    def call(self, class_type: str, kind: str, args: dict, instance: str = "", timeout: float | None = None) -> Any:
        """Run `kind` (run, IS_CHANGED, VALIDATE_INPUTS, check_lazy_status, input_types) in the pack."""
        ctx = context.current()
        message = {"op": "call", "class_type": class_type, "kind": kind, "instance": instance}
        if ctx is not None:
            message.update(prompt_id=ctx.prompt_id, node_id=ctx.node_id, real_node_id=ctx.real_node_id)
        interrupt = ctx.interrupt if ctx is not None else None
        with self.lock:
            if not self.alive():
                self.start()
            _, value = self._request(message, args, timeout=timeout, interrupt=interrupt,
                                     doing=f"running {class_type}.{kind}")
        return value[0]


# -- proxy node classes --------------------------------------------------------------------------------
def _validate_signature(params: list[str], var_kw: bool) -> inspect.Signature:
    # the first parameter stands for the class: inspect drops it from the bound classmethod
    ps = [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    ps += [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, default=None) for p in params]
    if var_kw:
        ps.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(ps)


def make_proxy(process: PackProcess, class_type: str, desc: dict, python_module: str) -> type:
    """A V1 node class whose work happens in the pack's process."""
    cached = {"input_types": desc["input_types"]}

    def input_types(cls: type) -> dict:
        # Fresh when the process is idle (combo lists may change), the last answer while it is busy.
        if process.alive() and process.lock.acquire(blocking=False):
            try:
                cached["input_types"] = process.call(class_type, "input_types", {}, timeout=30)
            except Exception:
                log.warning("INPUT_TYPES of isolated node %s could not be refreshed", class_type, exc_info=True)
            finally:
                process.lock.release()
        return cached["input_types"]

    def __init__(self: Any) -> None:
        self._loom_instance = uuid.uuid4().hex

    def run(self: Any, **kwargs: Any) -> Any:
        return process.call(class_type, "run", kwargs, instance=self._loom_instance)

    flags = desc.get("flags", {})
    attrs: dict[str, Any] = {
        "INPUT_TYPES": classmethod(input_types), "__init__": __init__, "run_isolated": run,
        "FUNCTION": "run_isolated", "RETURN_TYPES": tuple(desc["return_types"]),
        "CATEGORY": desc.get("category", "sd"), "DESCRIPTION": desc.get("description", ""),
        "INPUT_IS_LIST": desc.get("input_is_list", False), "RELATIVE_PYTHON_MODULE": python_module,
        "LOOM_ISOLATED_PACK": process.name,
        **{k: True for k, v in flags.items() if v},
    }
    for key, attr in (("return_names", "RETURN_NAMES"), ("output_is_list", "OUTPUT_IS_LIST"),
                      ("output_tooltips", "OUTPUT_TOOLTIPS")):
        if desc.get(key):
            attrs[attr] = tuple(desc[key])
    has = desc.get("has", {})
    if has.get("IS_CHANGED"):
        attrs["IS_CHANGED"] = classmethod(lambda cls, **kw: process.call(class_type, "IS_CHANGED", kw))
    if has.get("VALIDATE_INPUTS"):
        def validate(cls: type, **kw: Any) -> Any:
            return process.call(class_type, "VALIDATE_INPUTS", kw)

        sig = desc.get("validate_signature") or {"params": [], "var_kw": True}
        validate.__signature__ = _validate_signature(sig["params"], sig["var_kw"])  # type: ignore[attr-defined]
        attrs["VALIDATE_INPUTS"] = classmethod(validate)
    if has.get("check_lazy_status"):
        attrs["check_lazy_status"] = lambda self, **kw: process.call(
            class_type, "check_lazy_status", kw, instance=self._loom_instance)
    safe_name = "".join(c if c.isalnum() else "_" for c in class_type)
    return type(f"Isolated_{safe_name}", (), attrs)


@dataclass
class IsolatedLoad:
    mappings: dict[str, type]
    display: dict[str, str]
    web: tuple[str, Path] | None
    pid: int | None
    process: PackProcess = field(repr=False, default=None)  # type: ignore[assignment]


def load_isolated_pack(path: Path, name: str, entry: dict, timeout: float = 60.0) -> IsolatedLoad:
    """Start (or restart) the pack's process and make proxies for its nodes."""
    python = entry.get("python") or str(venv_python(venv_dir(path.parent, name)))
    if not Path(python).exists():
        log.warning("isolated pack %s has no virtual environment at %s; using Loom's python", name, python)
        python = sys.executable
    old = _processes.pop(name, None)
    if old is not None:
        old.stop()
    process = PackProcess(name, path, python, start_timeout=timeout)
    _processes[name] = process
    desc = process.start()
    python_module = f"custom_nodes.{name}"
    mappings = {ct: make_proxy(process, ct, d, python_module) for ct, d in desc["nodes"].items()}
    web = (desc["web_key"], Path(desc["web_dir"])) if desc.get("web_dir") else None
    return IsolatedLoad(mappings, desc.get("display") or {}, web, process.pid, process)


def stop_all() -> None:
    for process in list(_processes.values()):
        process.stop()
    _processes.clear()


atexit.register(stop_all)
