"""What a machine offers to run workflows: Loom's version, the model files, the node packs and node types.

The server and every worker make one; a worker whose manifest differs from the server's is refused,
because a run there would find another model, or another version of a node, than the one the user
validated against.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from server.affinity import model_files

SKIP_DIRS = {".git", "__pycache__", ".venv", ".venvs", "node_modules", "web"}


def model_sizes() -> dict[str, dict[str, int]]:
    """Model folder kind -> {model name: size in bytes} (a diffusers folder's size is its files' total)."""
    listing: dict[str, dict[str, int]] = {}
    for kind, name, full in model_files():
        if full.is_dir():
            size = sum(p.stat().st_size for p in full.rglob("*") if p.is_file())
        else:
            size = full.stat().st_size
        listing.setdefault(kind, {})[name] = size
    return listing


def pack_fingerprint(path: Path) -> str:
    """`<version>+<hash of its Python files>`: a pack edited in place differs even at the same version."""
    version = ""
    pyproject = path / "pyproject.toml" if path.is_dir() else None
    if pyproject is not None and pyproject.is_file():
        try:
            version = str(tomllib.loads(pyproject.read_text()).get("project", {}).get("version", ""))
        except (OSError, tomllib.TOMLDecodeError):
            version = ""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*.py") if not SKIP_DIRS.intersection(p.relative_to(path).parts))
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return f"{version or '?'}+{digest.hexdigest()[:12]}"


def make_manifest(registry) -> dict:
    """This process's manifest: call it after `paths.configure` and after the packs were loaded."""
    from server.routes_info import loom_version

    packs = {pack.name: pack_fingerprint(Path(pack.path)) for pack in registry.packs if pack.error is None}
    return {"loom_version": loom_version(), "models": model_sizes(), "packs": packs,
            "node_types": sorted(registry.names())}


def _list(names, limit: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def differences(server: dict, worker: dict) -> list[str]:
    """What the worker lacks or has otherwise than the server, in words ([] when they agree).

    Extra models on the worker are fine (nobody can ask for them); everything the server offers must
    be there with the same size, and the node packs and node types must be the same set.
    """
    problems = []
    if server.get("loom_version") != worker.get("loom_version"):
        problems.append(f"Loom {worker.get('loom_version')} there, {server.get('loom_version')} here")
    missing, resized = [], []
    for kind, files in server.get("models", {}).items():
        theirs = worker.get("models", {}).get(kind, {})
        for name, size in files.items():
            if name not in theirs:
                missing.append(f"{kind}/{name}")
            elif theirs[name] != size:
                resized.append(f"{kind}/{name} ({theirs[name]:,} bytes there, {size:,} here)")
    if missing:
        problems.append(f"models missing there: {_list(missing)}")
    if resized:
        problems.append(f"models that differ: {_list(resized)}")
    ours, theirs = server.get("packs", {}), worker.get("packs", {})
    if ours != theirs:
        only_here = [f"{n} {v}" for n, v in ours.items() if n not in theirs]
        only_there = [f"{n} {v}" for n, v in theirs.items() if n not in ours]
        changed = [f"{n} ({theirs[n]} there, {v} here)" for n, v in ours.items() if n in theirs and theirs[n] != v]
        for label, names in (("node packs missing there", only_here), ("node packs only there", only_there),
                             ("node packs at another version", changed)):
            if names:
                problems.append(f"{label}: {_list(names)}")
    our_types, their_types = set(server.get("node_types", [])), set(worker.get("node_types", []))
    if our_types != their_types and ours == theirs:
        if our_types - their_types:
            problems.append(f"node types missing there: {_list(our_types - their_types)}")
        if their_types - our_types:
            problems.append(f"node types only there: {_list(their_types - our_types)}")
    return problems
