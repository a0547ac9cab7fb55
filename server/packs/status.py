"""What `loom nodes list` and GET /api/nodes show: every pack on disk, its manifest entry and,
when a registry is given, how loading it went."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodes.registry import NodeRegistry
from server.packs import manifest
from server.packs.install import custom_nodes_dir


def _on_disk(cn_dir: Path) -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    if not cn_dir.is_dir():
        return found
    for entry in sorted(cn_dir.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name.startswith(".") or name == "__pycache__":
            continue
        enabled = not name.endswith(".disabled")
        base = name.removesuffix(".disabled")
        if entry.is_file() and not base.endswith(".py"):
            continue
        found[base.removesuffix(".py") if entry.is_file() else base] = (entry, enabled)
    return found


def list_packs(registry: NodeRegistry | None = None, cn_dir: Path | None = None) -> list[dict[str, Any]]:
    cn_dir = cn_dir or custom_nodes_dir()
    try:
        entries = manifest.read(cn_dir)
        manifest_error = None
    except manifest.ManifestError as e:
        entries, manifest_error = {}, str(e)
    loaded = {info.name: info for info in (registry.packs if registry is not None else [])}
    rows = []
    on_disk = _on_disk(cn_dir)
    for name in sorted(set(on_disk) | set(entries), key=str.lower):
        path, enabled = on_disk.get(name, (None, False))
        entry = entries.get(name, {})
        info = loaded.get(name)
        rows.append({
            "name": name,
            "version": entry.get("version"),
            "source": entry.get("source"),
            "kind": entry.get("kind"),
            "ref": entry.get("ref"),
            "commit": entry.get("commit"),
            "installed_at": entry.get("installed_at"),
            "isolated": bool(entry.get("isolated")),
            "enabled": enabled,
            "path": str(path) if path else None,
            "missing": path is None,
            "in_manifest": bool(entry),
            "loaded": info is not None,
            "node_count": len(info.node_names) if info is not None else None,
            "nodes": list(info.node_names) if info is not None else None,
            "load_seconds": round(info.load_seconds, 3) if info is not None else None,
            "load_error": info.error if info is not None else None,
            "side_effects": list(getattr(info, "side_effects", []) or []) if info is not None else [],
            "manifest_error": manifest_error,
        })
    return rows
