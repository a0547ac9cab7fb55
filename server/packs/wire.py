"""The message format between Loom and an isolated pack's process.

A frame is: 4-byte header length, JSON header, 8-byte blob length, blob. Tensors travel in the
blob as one safetensors file; the header refers to them by key. What can cross: None, bool, int,
float, str, list, tuple, dict, torch tensors, numpy arrays and ExecutionBlocker. Anything else
(a MODEL, a VAE, ...) lives in one process only and is refused with an error naming its type.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

MAX_HEADER = 256 * 1024 * 1024
_T = "__loom_tensor"
_NP = "__loom_ndarray"
_TUPLE = "__loom_tuple"
_ITEMS = "__loom_items"
_BLOCK = "__loom_blocker"
_MARKERS = (_T, _NP, _TUPLE, _ITEMS, _BLOCK)


class WireError(TypeError):
    """A value that cannot cross the process boundary."""


def encode(value: Any, tensors: dict[str, Any]) -> Any:
    import torch

    from nodes.interface import ExecutionBlocker

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().to("cpu").contiguous().clone()
        return {_T: key}
    if type(value).__module__ == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape"):
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(value.copy())
        return {_NP: key}
    if isinstance(value, tuple):
        return {_TUPLE: [encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and k not in _MARKERS for k in value):
            return {k: encode(v, tensors) for k, v in value.items()}
        return {_ITEMS: [[encode(k, tensors), encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, ExecutionBlocker):
        return {_BLOCK: value.message}
    raise WireError(f"a value of type {type(value).__module__}.{type(value).__qualname__} cannot be passed "
                    f"to or from an isolated pack's node (only tensors, numbers, strings, lists, tuples and "
                    f"dicts cross the process boundary)")


def decode(value: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (key, inner), = value.items()
            if key == _T:
                return tensors[inner]
            if key == _NP:
                return tensors[inner].numpy()
            if key == _TUPLE:
                return tuple(decode(v, tensors) for v in inner)
            if key == _ITEMS:
                return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in inner}
            if key == _BLOCK:
                from nodes.interface import ExecutionBlocker

                return ExecutionBlocker(inner)
        return {k: decode(v, tensors) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def pack(message: dict, payload: Any = None) -> bytes:
    """Serialise a message; `payload` (any value) goes under message["value"]."""
    tensors: dict[str, Any] = {}
    if payload is not None:
        message = dict(message, value=encode(payload, tensors))
    header = json.dumps(message).encode()
    blob = b""
    if tensors:
        from safetensors.torch import save

        blob = save(tensors)
    return struct.pack("!I", len(header)) + header + struct.pack("!Q", len(blob)) + blob


def unpack_value(message: dict, blob: bytes) -> Any:
    tensors: dict[str, Any] = {}
    if blob:
        from safetensors.torch import load

        tensors = load(blob)
    return decode(message.get("value"), tensors)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("the other process closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> tuple[dict, bytes]:
    (hlen,) = struct.unpack("!I", _recv_exact(sock, 4))
    if hlen > MAX_HEADER:
        raise EOFError(f"bad frame header length {hlen}")
    header = json.loads(_recv_exact(sock, hlen))
    (blen,) = struct.unpack("!Q", _recv_exact(sock, 8))
    return header, _recv_exact(sock, blen) if blen else b""
