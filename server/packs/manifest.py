"""The record of installed packs: `custom_nodes/.loom-packs.json`.

{"version": 1, "packs": {name: {name, version, source, kind, ref, commit, installed_at, updated_at,
isolated, enabled, python?}}}. A pack in custom_nodes/ without an entry (copied there by hand) is
still loaded; it simply has no recorded source. Writes are atomic and serialised by a lock file,
so the CLI and the server may both change it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from pathlib import Path

from nodes.custom_loader import MANIFEST_NAME
from nodes.paths import atomic_write

VERSION = 1


def manifest_path(custom_nodes_dir: Path) -> Path:
    return custom_nodes_dir / MANIFEST_NAME


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ManifestError(RuntimeError):
    pass


def read(custom_nodes_dir: Path) -> dict[str, dict]:
    path = manifest_path(custom_nodes_dir)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ManifestError(f"{path} is not valid JSON ({e}); fix or remove it") from e
    packs = data.get("packs", {}) if isinstance(data, dict) else None
    if not isinstance(packs, dict):
        raise ManifestError(f"{path} has no 'packs' object")
    return packs


def _write(custom_nodes_dir: Path, packs: dict[str, dict]) -> None:
    path = manifest_path(custom_nodes_dir)
    atomic_write(path, (json.dumps({"version": VERSION, "packs": packs}, indent=2, sort_keys=True) + "\n").encode())


@contextlib.contextmanager
def editing(custom_nodes_dir: Path) -> Iterator[dict[str, dict]]:
    """Read, let the caller change the dict, write back; one writer at a time."""
    custom_nodes_dir.mkdir(parents=True, exist_ok=True)
    with open(custom_nodes_dir / ".loom-packs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        packs = read(custom_nodes_dir)
        yield packs
        _write(custom_nodes_dir, packs)
