"""What `loom serve` was asked to do, in one object the app and the tests share."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback_host(host: str | None) -> bool:
    """Whether a host name or address (no port) stays on this machine, without asking DNS."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8188
    data_dir: Path | None = None
    models_dir: Path | None = None
    cpu: bool = False
    cache_ram_gb: float | None = None  # None: the engine's default LRU budget
    cache_none: bool = False
    auth_token: str | None = None
    max_upload_mb: float = 100.0
    insecure: bool = False
    cors_origin: str | None = None  # set by --enable-cors-header ("*" when given without a value)
    frontend: str = "loom"  # "loom" | "comfy"
    fast: bool = False
    disable_custom_nodes: bool = False
    custom_nodes_allow: list[str] | None = None
    workers: str = "local"  # "local" | "ray" | "ray:ADDRESS" (server/cluster/)
    worker_cpus: int | None = None  # CPUs per Ray worker on machines without a GPU (None: one per machine)
    ray_namespace: str = "loom"
    max_history: int = 100_000
    ws_queue_size: int = 256  # messages waiting per WebSocket client before it counts as behind
    ws_stall_seconds: float = 10.0  # a client behind for this long without reading is disconnected
    extra: dict = field(default_factory=dict)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def bound_to_loopback(self) -> bool:
        return is_loopback_host(self.host)

    def check_exposure(self) -> str | None:
        """Why this configuration is unsafe to start, or None."""
        if self.bound_to_loopback or self.auth_token or self.insecure:
            return None
        return (f"refusing to listen on {self.host}: anyone who can reach this address could run "
                "workflows and read your images. Pass --auth-token TOKEN (clients then send "
                "'Authorization: Bearer TOKEN', browsers open /?token=TOKEN once), or --insecure "
                "if this network is trusted.")
