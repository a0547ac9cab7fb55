"""Which known node packs provide a node type: for the server's "missing node" errors and the editor.

The data (nodes/pack_index.json) was read from public files named in its "sources"; it is a local
snapshot, never fetched at run time, so it only knows the packs listed there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path

INDEX_PATH = Path(__file__).with_name("pack_index.json")


@functools.lru_cache(maxsize=1)
def _index() -> tuple[dict[str, list[dict]], dict[str, str]]:
    data = json.loads(INDEX_PATH.read_text())
    by_type: dict[str, list[dict]] = {}
    for pack in data.get("packs", []):
        info = {"name": pack["name"], "title": pack.get("title", pack["name"]), "url": pack["url"],
                "source": pack.get("source")}
        for class_type in pack.get("nodes", []):
            by_type.setdefault(class_type, []).append(info)
    return by_type, dict(data.get("sources", {}))


def providers_for(class_types: Iterable[str]) -> dict[str, list[dict]]:
    """{class_type: [{name, title, url, source}, ...]} for every given type (empty list: unknown)."""
    by_type, _ = _index()
    return {ct: [dict(p) for p in by_type.get(ct, [])] for ct in class_types}


def packs_providing(class_types: Iterable[str]) -> dict[str, list[dict]]:
    """The server's hook name for providers_for (only the types some pack provides)."""
    return {ct: packs for ct, packs in providers_for(class_types).items() if packs}


def sources() -> dict[str, str]:
    """Where each entry's facts were read (source id -> description)."""
    return dict(_index()[1])
