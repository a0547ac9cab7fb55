"""Loom's server package, which is also what a ComfyUI node pack gets from `import server`.

Packs use `server.PromptServer.instance` (routes, send_sync, ...). It is answered lazily from
`server.compat_bridge`, so importing the server package stays cheap.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "PromptServer":
        from server.compat_bridge import PromptServer

        return PromptServer
    raise AttributeError(f"module 'server' has no attribute {name!r}")
