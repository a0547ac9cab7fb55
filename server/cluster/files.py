"""Files that travel with a run: input images to the worker, and saved outputs back to the server.

A worker has its own data folders on its own machine. Before a run it receives the files the prompt
names from the server's input (or output/temp) folder; each `executed` event brings the files its ui
names, which the server writes into its own output/temp folder before the event reaches a client, so
/view and the history work exactly as in local mode. Two workers both saving `Loom_00001_.png` is
normal (each counts in its own folder); the second copy gets the server folder's next free number,
and the names in the event and the history are changed to match.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from nodes import paths
from server.affinity import constant_strings

MAX_INPUT_BYTES = 512 * 1024**2  # what one run may carry to a worker
FILE_KINDS = ("output", "temp", "input")
_COUNTED = re.compile(r"^(?P<stem>.*)_(?P<counter>\d+)_(?P<ext>\.[^.]*)$")

FileRef = tuple[str, str, str]  # (type, subfolder, filename)


class InputTooLarge(ValueError):
    pass


def prompt_input_files(prompt: dict) -> dict[FileRef, bytes]:
    """The data-folder files a prompt names in its constant string inputs ("x.png", "a/b.png [output]")."""
    files: dict[FileRef, bytes] = {}
    total = 0
    for value in constant_strings(prompt):
        if not value or len(value) > 1024:
            continue
        name, kind = paths.split_annotation(value)
        try:
            path = paths.get_annotated_filepath(value)
        except (paths.UnsafePath, ValueError, OSError):
            continue
        if not path.is_file():
            continue
        sub, _, filename = name.replace("\\", "/").rpartition("/")
        ref = (kind, sub, filename)
        if ref in files:
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_INPUT_BYTES:
            raise InputTooLarge(f"the files this prompt loads are over {MAX_INPUT_BYTES // 1024**2} MB together, "
                                "too much to send to a worker")
        files[ref] = data
    return files


def write_files(files: dict[FileRef, bytes]) -> None:
    """Worker side: put the files a run brought into this machine's data folders (unchanged ones stay)."""
    for (kind, sub, filename), data in files.items():
        dest = paths.safe_join(paths.directory_for_type(kind), sub, filename)
        if dest.is_file() and dest.stat().st_size == len(data) and dest.read_bytes() == data:
            continue
        paths.atomic_write(dest, data)


def ui_file_refs(ui: dict) -> list[FileRef]:
    """The files a node's ui result names (every media list uses {filename, subfolder, type})."""
    refs = []
    for entries in ui.values() if isinstance(ui, dict) else ():
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if (isinstance(entry, dict) and isinstance(entry.get("filename"), str)
                    and entry.get("type", "output") in ("output", "temp")):
                refs.append((entry.get("type", "output"), entry.get("subfolder") or "", entry["filename"]))
    return refs


def read_ui_files(ui: dict) -> list[tuple[FileRef, bytes]]:
    """Worker side: the bytes of every file a ui result names (missing ones are skipped)."""
    out = []
    for ref in ui_file_refs(ui):
        kind, sub, filename = ref
        try:
            path = paths.safe_join(paths.directory_for_type(kind), sub, filename)
            out.append((ref, path.read_bytes()))
        except (paths.UnsafePath, OSError):
            continue
    return out


def rename_in_ui(ui: dict, renames: dict[FileRef, str]) -> dict:
    """A copy of a ui result with the renamed files' new names."""
    if not renames or not isinstance(ui, dict):
        return ui
    out = {}
    for key, entries in ui.items():
        if isinstance(entries, list):
            new_entries = []
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
                    ref = (entry.get("type", "output"), entry.get("subfolder") or "", entry["filename"])
                    if ref in renames:
                        entry = {**entry, "filename": renames[ref]}
                new_entries.append(entry)
            entries = new_entries
        out[key] = entries
    return out


class OutputReceiver:
    """Server side: writes the files workers send into this server's folders without clobbering any."""

    def __init__(self, remember: int = 4096):
        # (worker, ref, sha256) -> the name it got here: a cached node re-sends the same file every run
        self._placed: OrderedDict[tuple, str] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()  # worker threads receive side by side; names are picked one at a time

    def receive(self, worker: str, files: list[tuple[FileRef, bytes]]) -> dict[FileRef, str]:
        """Write the files; returns {ref: new filename} for those that had to take another name."""
        with self._lock:
            return self._receive(worker, files)

    def _receive(self, worker: str, files: list[tuple[FileRef, bytes]]) -> dict[FileRef, str]:
        renames = {}
        for ref, data in files:
            kind, sub, filename = ref
            if kind not in ("output", "temp"):
                continue
            folder = paths.safe_join(paths.directory_for_type(kind), sub)
            paths.safe_join(folder, filename)  # refuses a name that leaves the folder
            digest = hashlib.sha256(data).hexdigest()
            key = (worker, ref, digest)
            name = self._placed.get(key)
            if name is None or not _same(folder / name, data):
                name = filename if _free_or_same(folder / filename, data) else _next_free_name(folder, filename)
                if not _same(folder / name, data):
                    paths.atomic_write(folder / name, data)
            self._placed[key] = name
            self._placed.move_to_end(key)
            while len(self._placed) > self._remember:
                self._placed.popitem(last=False)
            if name != filename:
                renames[ref] = name
        return renames


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _free_or_same(path: Path, data: bytes) -> bool:
    return not path.exists() or _same(path, data)


def _next_free_name(folder: Path, filename: str) -> str:
    """`Loom_00003_.png` -> the folder's next counter for `Loom`; other names get `-2`, `-3`, ..."""
    m = _COUNTED.match(filename)
    if m:
        stem, digits, ext = m.group("stem"), len(m.group("counter")), m.group("ext")
        pattern = re.compile(re.escape(stem) + r"_(\d+)_?\.")
        counter = max((int(p.group(1)) for p in map(pattern.match, os.listdir(folder)) if p), default=0) + 1
        return f"{stem}_{counter:0{digits}}_{ext}"
    stem, dot, ext = filename.rpartition(".")
    stem, ext = (stem, dot + ext) if dot else (filename, "")
    n = 2
    while (folder / f"{stem}-{n}{ext}").exists():
        n += 1
    return f"{stem}-{n}{ext}"
