"""Queue and history that survive restarts: one SQLite file (`loom.sqlite3`, WAL) in the data dir.

The queue table holds pending and running prompts; a finished run moves to the history table in the
same transaction, so a crash never loses or duplicates one. History rows keep the full dialect item
as JSON next to the few columns the job list filters and sorts on, so paging never parses blobs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from server.jobs import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    QueueItem,
    job_status_for,
    outputs_summary,
    prune,
    run_times,
)

SCHEMA_VERSION = 2
DB_NAME = "loom.sqlite3"
PRUNE_EVERY = 256  # finished runs between history prunes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    prompt_id   TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    number      REAL NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'running')),
    prompt      TEXT NOT NULL,
    extra_data  TEXT NOT NULL,
    outputs     TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    start_time  INTEGER,
    workflow_id TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS history (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id       TEXT NOT NULL UNIQUE,
    number          REAL NOT NULL,
    job_status      TEXT NOT NULL,
    create_time     INTEGER NOT NULL,
    start_time      INTEGER,
    end_time        INTEGER,
    workflow_id     TEXT,
    outputs_count   INTEGER NOT NULL DEFAULT 0,
    preview_output  TEXT,
    execution_error TEXT,
    item            TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    user  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user, key)
);
CREATE INDEX IF NOT EXISTS history_by_time ON history (create_time);
CREATE INDEX IF NOT EXISTS history_by_status_time ON history (job_status, create_time);
CREATE INDEX IF NOT EXISTS history_by_workflow ON history (workflow_id, create_time);
"""

_JOB_COLUMNS = ("prompt_id, status, number, create_time, start_time, end_time, workflow_id, "
                "outputs_count, preview_output, execution_error")


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class Store:
    """Thread-safe: the event loop and the worker threads share one connection under a lock."""

    def __init__(self, data_dir: Path, max_history: int = 100_000):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_NAME
        self.max_history = max_history
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._since_prune = 0
        self.prune()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        """Bring a database made by an older Loom up to this schema (columns are only ever added)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(queue)")}
        if "attempts" not in columns:  # schema 1
            self._db.execute("ALTER TABLE queue ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _tx(self, statements) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- settings ----------------------------------------------------------------------------------
    def settings_get(self, user: str) -> dict:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM settings WHERE user = ?", (user,)).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def settings_update(self, user: str, values: dict) -> None:
        """Set (merge) these keys in one transaction."""
        self._tx([("INSERT INTO settings VALUES (?, ?, ?) ON CONFLICT (user, key) DO UPDATE SET value = excluded.value",
                   (user, str(key), _dumps(value))) for key, value in values.items()])

    def has_settings(self, user: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM settings WHERE user = ? LIMIT 1", (user,)).fetchone() is not None

    # -- queue -------------------------------------------------------------------------------------
    def max_number_and_seq(self) -> tuple[float, int]:
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(ABS(n)), MAX(s) FROM (SELECT number n, seq s FROM queue "
                "UNION ALL SELECT number, 0 FROM history)").fetchone()
        return float(row[0] or 0), int(row[1] or 0)

    def add_pending(self, item: QueueItem) -> None:
        self._tx([("INSERT INTO queue (prompt_id, seq, number, state, prompt, extra_data, outputs, create_time, "
                   "start_time, workflow_id, attempts) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, NULL, ?, ?)",
                   (item.prompt_id, item.seq, item.number, _dumps(item.prompt), _dumps(item.extra_data),
                    _dumps(item.outputs), item.create_time, item.workflow_id, item.attempts))])

    def mark_running(self, prompt_id: str, start_time: int) -> None:
        self._tx([("UPDATE queue SET state='running', start_time=? WHERE prompt_id=?", (start_time, prompt_id))])

    def mark_pending(self, item: QueueItem) -> None:
        """A running item goes back to the queue (its worker was lost, or none could take it)."""
        self._tx([("UPDATE queue SET state='pending', start_time=NULL, number=?, attempts=? WHERE prompt_id=?",
                   (item.number, item.attempts, item.prompt_id))])

    def delete_pending(self, prompt_ids: list[str] | None) -> None:
        """Remove the given pending items, or all of them when prompt_ids is None."""
        if prompt_ids is None:
            self._tx([("DELETE FROM queue WHERE state='pending'", ())])
        else:
            self._tx([("DELETE FROM queue WHERE state='pending' AND prompt_id=?", (pid,)) for pid in prompt_ids])

    def load_queue(self) -> list[tuple[str, QueueItem]]:
        """Every stored queue row as (state, item), in arrival order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, prompt_id, seq, number, prompt, extra_data, outputs, create_time, start_time, attempts "
                "FROM queue ORDER BY seq").fetchall()
        return [(r[0], QueueItem(number=r[3], prompt_id=r[1], prompt=json.loads(r[4]), extra_data=json.loads(r[5]),
                                 outputs=json.loads(r[6]), create_time=r[7], seq=r[2], start_time=r[8],
                                 attempts=r[9]))
                for r in rows]

    # -- finishing runs ------------------------------------------------------------------------------
    def finish(self, item: QueueItem, history: dict) -> None:
        """Move a run from the queue to the history, atomically; keep the history under max_history."""
        status = history["status"]
        messages = status.get("messages", [])
        start, end, error = run_times(messages)
        count, preview = outputs_summary(history.get("outputs") or {})
        statements = [
            ("DELETE FROM queue WHERE prompt_id=?", (item.prompt_id,)),
            ("INSERT OR REPLACE INTO history (prompt_id, number, job_status, create_time, start_time, end_time, "
             "workflow_id, outputs_count, preview_output, execution_error, item) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
             (item.prompt_id, item.number, job_status_for(status["status_str"], messages), item.create_time,
              start if start is not None else item.start_time, end, item.workflow_id, count,
              _dumps(preview) if preview else None, _dumps(error) if error else None, _dumps(history))),
        ]
        self._tx(statements)
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self.prune()

    def prune(self) -> None:
        """Drop the oldest history beyond max_history (amortised: finding the cut scans the index)."""
        self._since_prune = 0
        if self.max_history > 0:
            self._tx([("DELETE FROM history WHERE seq <= "
                       "(SELECT seq FROM history ORDER BY seq DESC LIMIT 1 OFFSET ?)", (self.max_history,))])

    # -- history -----------------------------------------------------------------------------------
    def history_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM history").fetchone()[0]

    def history_get(self, prompt_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT item FROM history WHERE prompt_id=?", (prompt_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def history_page(self, max_items: int | None, offset: int | None) -> dict[str, dict]:
        """The dialect's paging: oldest first from `offset`; max_items without offset means the newest N."""
        with self._lock:
            if offset is None or offset < 0:
                if max_items is None:
                    rows = self._db.execute("SELECT prompt_id, item FROM history ORDER BY seq").fetchall()
                else:
                    rows = self._db.execute(
                        "SELECT prompt_id, item FROM history ORDER BY seq DESC LIMIT ?", (max_items,)).fetchall()
                    rows.reverse()
            else:
                limit = -1 if max_items is None else max_items
                # Skip rows on the primary-key index alone, then read only the page's blobs.
                rows = self._db.execute(
                    "SELECT prompt_id, item FROM history WHERE seq IN "
                    "(SELECT seq FROM history ORDER BY seq LIMIT ? OFFSET ?) ORDER BY seq",
                    (limit, offset)).fetchall()
        return {pid: json.loads(item) for pid, item in rows}

    def history_delete(self, prompt_ids: list[str] | None) -> None:
        if prompt_ids is None:
            self._tx([("DELETE FROM history", ())])
        else:
            self._tx([("DELETE FROM history WHERE prompt_id=?", (pid,)) for pid in prompt_ids])

    # -- jobs ----------------------------------------------------------------------------------------
    def jobs(self, statuses: list[str], workflow_id: str | None, sort_by: str, descending: bool,
             limit: int | None, offset: int) -> tuple[list[dict], int]:
        """Queue and history as one job list, filtered, sorted and paged in SQL."""
        queue_states = [s for s, q in ((PENDING, "pending"), (IN_PROGRESS, "running")) if s in statuses]
        history_states = [s for s in (COMPLETED, FAILED, CANCELLED) if s in statuses]
        parts, params = [], []
        if queue_states:
            states = ["pending" if s == PENDING else "running" for s in queue_states]
            where = f"state IN ({','.join('?' * len(states))})"
            params += states
            if workflow_id is not None:
                where += " AND workflow_id=?"
                params.append(workflow_id)
            parts.append(
                "SELECT prompt_id, CASE state WHEN 'running' THEN 'in_progress' ELSE 'pending' END AS status, "
                "number, create_time, start_time, NULL AS end_time, workflow_id, 0 AS outputs_count, "
                f"NULL AS preview_output, NULL AS execution_error FROM queue WHERE {where}")
        if history_states:
            where = f"job_status IN ({','.join('?' * len(history_states))})"
            params += history_states
            if workflow_id is not None:
                where += " AND workflow_id=?"
                params.append(workflow_id)
            parts.append(f"SELECT {_JOB_COLUMNS.replace('status', 'job_status AS status', 1)} FROM history "
                         f"WHERE {where}")
        if not parts:
            return [], 0
        union = " UNION ALL ".join(parts)
        direction = "DESC" if descending else "ASC"
        if sort_by == "execution_duration":
            order = f"COALESCE(end_time - start_time, 0) {direction}, create_time {direction}"
        else:
            order = f"create_time {direction}"
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM ({union})", params).fetchone()[0]
            rows = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM ({union}) ORDER BY {order} LIMIT ? OFFSET ?",
                                    [*params, -1 if limit is None else limit, offset]).fetchall()
        return [_job_row(r) for r in rows], total

    def job_detail(self, prompt_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_JOB_COLUMNS.replace('status', 'job_status AS status', 1)}, item "
                                   "FROM history WHERE prompt_id=?", (prompt_id,)).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT prompt_id, CASE state WHEN 'running' THEN 'in_progress' ELSE 'pending' END, number, "
                    "create_time, start_time, NULL, workflow_id, 0, NULL, NULL, NULL FROM queue WHERE prompt_id=?",
                    (prompt_id,)).fetchone()
        if row is None:
            return None
        job = _job_row(row[:10])
        if row[10] is not None:
            item = json.loads(row[10])
            number, _pid, prompt, extra_data, _outs = item["prompt"]
            job["outputs"] = item.get("outputs", {})
            job["execution_status"] = item.get("status")
            job["execution_meta"] = item.get("meta")
            job["workflow"] = {"prompt": prompt, "extra_data": extra_data}
        return job

    # -- recovery ------------------------------------------------------------------------------------
    def recover(self, message: str, now_ms: int, retry: bool = False) -> list[str]:
        """Runs that were in progress when the process died become failed history items.

        With `retry` (the workers run elsewhere and outlived the server), a run that was never retried
        stays in the queue for `PromptQueue` to put back at the front. Returns the ids filed as failed.
        """
        failed = [item for state, item in self.load_queue()
                  if state == "running" and not (retry and item.attempts < 1)]
        for item in failed:
            error = {"prompt_id": item.prompt_id, "node_id": "", "node_type": "", "executed": [],
                     "exception_message": message, "exception_type": "LoomStopped", "traceback": [],
                     "current_inputs": {}, "current_outputs": [], "timestamp": now_ms}
            messages = []
            if item.start_time is not None:
                messages.append(["execution_start", {"prompt_id": item.prompt_id, "timestamp": item.start_time}])
            messages.append(["execution_error", error])
            history = {"prompt": item.as_tuple(), "outputs": {},
                       "status": {"status_str": "error", "completed": False, "messages": messages}, "meta": {}}
            self.finish(item, history)
        return [item.prompt_id for item in failed]


def _job_row(row) -> dict:
    pid, status, number, create, start, end, wid, count, preview, error = row
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return prune({
        "id": pid, "status": status, "priority": number, "create_time": create,
        "execution_start_time": start if status != PENDING else None, "execution_end_time": end,
        "execution_error": json.loads(error) if error else None, "outputs_count": count,
        "preview_output": json.loads(preview) if preview else None, "workflow_id": wid,
    })
