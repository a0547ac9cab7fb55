"""The process an isolated pack runs in: `python -m server.packs.isolated_worker --fd N --pack PATH`.

It runs under the pack's own virtual environment (whose `.pth` adds Loom's site-packages after
the pack's own), imports the pack with the same compatibility layer as the server, then answers
requests from Loom over the socket it inherited: node definitions, node calls (with progress sent
back and interrupts received while a node runs), IS_CHANGED / VALIDATE_INPUTS / check_lazy_status.
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

# The repo root: the editable install is not visible through the venv's .pth, so add it here.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from server.packs import wire  # noqa: E402


class Worker:
    def __init__(self, sock: socket.socket, pack_path: Path, name: str):
        self.sock = sock
        self.pack_path = pack_path
        self.name = name
        self.write_lock = threading.Lock()
        self.inbox: queue.Queue = queue.Queue()
        self.classes: dict[str, type] = {}
        self.instances: dict[str, Any] = {}
        self.current_interrupt: Any = None

    # -- transport ----------------------------------------------------------------------------------
    def send(self, message: dict, payload: Any = None) -> None:
        data = wire.pack(message, payload)
        with self.write_lock:
            self.sock.sendall(data)

    def reader(self) -> None:
        """Receives messages; an interrupt acts at once, everything else queues for the main loop."""
        try:
            while True:
                message, blob = wire.recv(self.sock)
                if message.get("op") == "interrupt":
                    if self.current_interrupt is not None:
                        self.current_interrupt.set()
                    continue
                self.inbox.put((message, blob))
        except (EOFError, OSError):
            self.inbox.put(None)

    # -- requests ------------------------------------------------------------------------------------
    def load(self, message: dict) -> dict:
        from nodes import custom_loader, paths

        folders = paths.configure(message.get("data_dir"), message.get("models_dir"))
        for kind, dirs in (message.get("extra") or {}).items():
            folders.extra.setdefault(kind, []).extend(Path(d) for d in dirs)
        custom_loader.ensure_compat_path()
        import nodes
        from nodes.registry import builtin_registry

        nodes.set_active_registry(builtin_registry())
        module = custom_loader._exec_pack(self.pack_path, custom_loader.sys_module_name(self.pack_path))
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        if mappings is None and hasattr(module, "comfy_entrypoint"):
            mappings, error = custom_loader._v3_classes(module)
            if error:
                raise RuntimeError(error)
        if mappings is None:
            raise RuntimeError("the module has no NODE_CLASS_MAPPINGS")
        display = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
        self.classes = dict(mappings)
        web = custom_loader._web_dir(module, self.pack_path)
        return {"nodes": {k: self.describe(k, cls) for k, cls in self.classes.items()},
                "display": {k: v for k, v in display.items() if k in self.classes},
                "web_dir": str(web[1]) if web else None, "web_key": web[0] if web else None}

    def describe(self, class_type: str, cls: type) -> dict:
        return {
            "input_types": _plain(cls.INPUT_TYPES()),
            "return_types": list(getattr(cls, "RETURN_TYPES", ())),
            "return_names": list(getattr(cls, "RETURN_NAMES", None) or []),
            "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", None) or []),
            "output_tooltips": list(getattr(cls, "OUTPUT_TOOLTIPS", None) or []),
            "input_is_list": bool(getattr(cls, "INPUT_IS_LIST", False)),
            "function": getattr(cls, "FUNCTION", ""),
            "category": getattr(cls, "CATEGORY", "sd"),
            "description": getattr(cls, "DESCRIPTION", "") or "",
            "flags": {f: bool(getattr(cls, f, False)) for f in
                      ("OUTPUT_NODE", "NOT_IDEMPOTENT", "DEPRECATED", "EXPERIMENTAL", "API_NODE")},
            "has": {m: hasattr(cls, m) for m in ("IS_CHANGED", "VALIDATE_INPUTS", "check_lazy_status")},
            "validate_signature": _signature(getattr(cls, "VALIDATE_INPUTS", None)),
        }

    def instance(self, class_type: str, instance_id: str) -> Any:
        key = f"{class_type}/{instance_id}"
        if key not in self.instances:
            self.instances[key] = self.classes[class_type]()
        return self.instances[key]

    def call(self, message: dict, args: dict) -> Any:
        from nodes import context

        class_type = message["class_type"]
        cls = self.classes[class_type]
        kind = message["kind"]
        if kind == "input_types":
            return _plain(cls.INPUT_TYPES())
        if kind in ("IS_CHANGED", "VALIDATE_INPUTS"):
            return getattr(cls, kind)(**args)
        target = self.instance(class_type, message["instance"])
        if kind == "check_lazy_status":
            return target.check_lazy_status(**args)
        flag = context.InterruptFlag()
        self.current_interrupt = flag

        def on_progress(node_id: str, value: float, total: float, _preview: Any) -> None:
            self.send({"op": "progress", "node_id": node_id, "value": value, "total": total})

        ctx = context.NodeContext(prompt_id=message.get("prompt_id", ""), node_id=message.get("node_id", ""),
                                  real_node_id=message.get("real_node_id", ""), interrupt=flag,
                                  on_progress=on_progress)
        token = context.set_current(ctx)
        try:
            result = getattr(target, cls.FUNCTION)(**args)
            if hasattr(result, "__await__"):
                import asyncio

                result = asyncio.run(_await(result))
            return result
        finally:
            context.reset_current(token)
            self.current_interrupt = None

    def serve(self) -> int:
        threading.Thread(target=self.reader, name="loom-isolated-reader", daemon=True).start()
        while True:
            item = self.inbox.get()
            if item is None:
                return 0
            message, blob = item
            op = message.get("op")
            try:
                if op == "load":
                    self.send({"op": "ok", "id": message.get("id"), "pid": os.getpid()}, self.load(message))
                elif op == "call":
                    args = wire.unpack_value(message, blob) or {}
                    self.send({"op": "ok", "id": message.get("id")}, _Boxed(self.call(message, args)))
                elif op == "exit":
                    self.send({"op": "ok", "id": message.get("id")})
                    return 0
                else:
                    raise ValueError(f"unknown request {op!r}")
            except BaseException as e:  # report everything; the process stays up for the next call
                from nodes.context import InterruptProcessing

                self.send({"op": "error", "id": message.get("id"), "type": type(e).__name__,
                           "interrupted": isinstance(e, InterruptProcessing),
                           "message": str(e), "traceback": traceback.format_exc()})
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    return 1


def _signature(fn: Any) -> dict | None:
    """VALIDATE_INPUTS' parameter names: the engine decides what to check from them."""
    if fn is None:
        return None
    import inspect

    params = inspect.signature(fn).parameters.values()
    return {"params": [p.name for p in params if p.kind != inspect.Parameter.VAR_KEYWORD],
            "var_kw": any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)}


def _plain(value: Any) -> Any:
    """INPUT_TYPES made of plain values: unknown objects (enums, custom types) become their str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value) if isinstance(value, tuple) else [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


class _Boxed(tuple):
    """Wraps a result so that None still travels as a payload."""

    def __new__(cls, value: Any):
        return super().__new__(cls, (value,))


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--pack", required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    except ImportError:
        pass
    return Worker(sock, Path(args.pack), args.name).serve()


if __name__ == "__main__":
    sys.exit(main())
