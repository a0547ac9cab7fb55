"""The recent log lines, for `/internal/logs` (the frontend's terminal panel)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime


class LogBuffer(logging.Handler):
    def __init__(self, max_entries: int = 1000):
        super().__init__(logging.INFO)
        self.entries: deque[dict] = deque(maxlen=max_entries)
        self._entries_lock = threading.Lock()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"t": datetime.fromtimestamp(record.created).isoformat(), "m": self.format(record) + "\n"}
        except Exception:
            return
        with self._entries_lock:
            self.entries.append(entry)

    def snapshot(self) -> list[dict]:
        with self._entries_lock:
            return list(self.entries)

    def text(self) -> str:
        return "".join(e["m"] for e in self.snapshot())
