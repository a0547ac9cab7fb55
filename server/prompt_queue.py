"""The prompt queue: pending items ordered by (number, arrival), running items, backed by the Store.

Workers block in `take()`; the HTTP side adds and deletes. Every change is written to SQLite before
it is visible, so a restart finds exactly what the API last reported.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

from server.jobs import QueueItem
from server.store import Store


class PromptQueue:
    def __init__(self, store: Store):
        self.store = store
        self._cond = threading.Condition()
        self._pending: list[tuple[float, int, str]] = []  # sorted (number, seq, prompt_id)
        self._items: dict[str, QueueItem] = {}
        self._running: dict[str, QueueItem] = {}
        self._closed = False
        self._wakeups = 0
        self.on_change: Callable[[], None] = lambda: None
        max_number, max_seq = store.max_number_and_seq()
        self._counter = int(max_number) + 1
        self._seq = max_seq + 1
        for state, item in store.load_queue():
            if state == "pending":
                self._insert(item)
            else:  # left running by `Store.recover(retry=True)`: its worker outlived the server
                self._requeue(item)

    # -- producers -----------------------------------------------------------------------------------
    def next_number(self, front: bool) -> int:
        with self._cond:
            n = self._counter
            self._counter += 1
        return -n if front else n

    def put(self, item: QueueItem) -> None:
        with self._cond:
            if item.prompt_id in self._items:
                raise KeyError(f"prompt_id {item.prompt_id!r} is already queued")
            item.seq = self._seq
            self._seq += 1
            # numbers given by clients push the counter on (capped: SQLite stores 64-bit integers)
            self._counter = max(self._counter, min(int(abs(item.number)) + 1, 2**62))
            self.store.add_pending(item)
            self._insert(item)
            self._cond.notify()
        self.on_change()

    def _insert(self, item: QueueItem) -> None:
        self._items[item.prompt_id] = item
        bisect.insort(self._pending, (item.number, item.seq, item.prompt_id))

    def requeue_front(self, item: QueueItem) -> None:
        """Put a running item back at the front of the queue, counting the attempt."""
        with self._cond:
            self._running.pop(item.prompt_id, None)
            self._requeue(item)
            self._cond.notify()
        self.on_change()

    def _requeue(self, item: QueueItem) -> None:
        item.attempts += 1
        item.number = -self._counter
        self._counter += 1
        item.start_time = None
        self.store.mark_pending(item)
        self._insert(item)

    def put_back(self, item: QueueItem) -> None:
        """Undo a take(): the item returns to its place, no attempt counted (no worker could take it)."""
        with self._cond:
            self._running.pop(item.prompt_id, None)
            item.start_time = None
            self.store.mark_pending(item)
            self._insert(item)
            self._cond.notify()
        self.on_change()

    def delete(self, prompt_ids: list[str] | None) -> list[str]:
        """Remove pending items (all when prompt_ids is None); returns the ids removed."""
        with self._cond:
            if prompt_ids is None:
                removed = [pid for _, _, pid in self._pending]
            else:
                wanted = set(prompt_ids)
                removed = [pid for _, _, pid in self._pending if pid in wanted]
            if not removed:
                return []
            self.store.delete_pending(None if prompt_ids is None else removed)
            gone = set(removed)
            self._pending = [e for e in self._pending if e[2] not in gone]
            for pid in removed:
                self._items.pop(pid, None)
        self.on_change()
        return removed

    # -- consumers ----------------------------------------------------------------------------------
    def take(self, timeout: float | None = None) -> QueueItem | None:
        """The next pending item, now running; None on timeout, close or wake()."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            wakeups = self._wakeups
            while not self._pending and not self._closed and wakeups == self._wakeups:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed or not self._pending:
                return None
            _, _, pid = self._pending.pop(0)
            item = self._items.pop(pid)
            item.start_time = int(time.time() * 1000)
            self.store.mark_running(pid, item.start_time)
            self._running[pid] = item
        self.on_change()
        return item

    def done(self, item: QueueItem, history: dict) -> None:
        with self._cond:
            self.store.finish(item, history)
            self._running.pop(item.prompt_id, None)
        self.on_change()

    def wake(self) -> None:
        """Make every take() return so workers can look at other work (e.g. /free)."""
        with self._cond:
            self._wakeups += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- views ---------------------------------------------------------------------------------------
    def snapshot(self) -> tuple[list[QueueItem], list[QueueItem]]:
        """(running, pending) in execution order."""
        with self._cond:
            return list(self._running.values()), [self._items[pid] for _, _, pid in self._pending]

    def remaining(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._running)

    def is_queued(self, prompt_id: str) -> bool:
        with self._cond:
            return prompt_id in self._items or prompt_id in self._running
