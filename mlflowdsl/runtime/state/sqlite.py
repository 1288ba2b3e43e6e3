"""SQLite state under ``<home>/state.db``.

WAL mode lets ``mlw status`` read while a run writes, and a busy timeout makes concurrent
writers from several processes wait instead of failing. Records are stored as their JSON
next to the few columns that queries need.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable

from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_delay, wait_random

from mlflowdsl.errors import StateError
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.base import AttemptLog, StateBackend, keep_tail

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    header TEXT NOT NULL,
    plan_json TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS executions_created ON executions (created);
CREATE INDEX IF NOT EXISTS executions_workflow ON executions (workflow_id, created);
CREATE TABLE IF NOT EXISTS task_results (
    execution_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    cache_key TEXT,
    PRIMARY KEY (execution_id, task_id)
);
CREATE INDEX IF NOT EXISTS task_results_cache_key ON task_results (cache_key);
CREATE TABLE IF NOT EXISTS attempt_logs (
    execution_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    data BLOB NOT NULL,
    total INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (execution_id, task_id, attempt)
);
"""


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database written by an earlier version up to ``SCHEMA`` (columns only added)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(task_results)")}
    if columns and "cache_key" not in columns:
        conn.execute("ALTER TABLE task_results ADD COLUMN cache_key TEXT")


def append_log(conn: sqlite3.Connection, execution_id: str, task_id: str, attempt: int, data: bytes, *,
               limit: int, dropped: int = 0) -> None:
    """Append to one attempt's log in one transaction, keeping its last ``limit`` bytes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT data, total FROM attempt_logs WHERE execution_id = ? AND task_id = ? AND attempt = ?",
                           (execution_id, task_id, attempt)).fetchone()
        old, total = (bytes(row[0]), row[1]) if row else (b"", 0)
        conn.execute("INSERT OR REPLACE INTO attempt_logs (execution_id, task_id, attempt, data, total, updated) "
                     "VALUES (?,?,?,?,?,?)", (execution_id, task_id, attempt, keep_tail(old, data, limit),
                                              total + len(data) + dropped, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SQLiteLogWriter:
    """The worker's side of attempt logs: one connection shared by the process's threads
    (a capture's last flush runs in the task's thread, the others in the flusher thread).
    A forked child must not use it (SQLite connections do not survive ``fork``): the
    capture sends a child's output through a file instead (``runtime/logcapture.py``)."""

    def __init__(self, path: str | Path):
        SQLiteState(path)  # the schema (a short-lived connection)
        self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()

    def append_attempt_log(self, execution_id: str, task_id: str, attempt: int, data: bytes, *,
                           limit: int, dropped: int = 0) -> None:
        with self._lock:
            append_log(self._conn, execution_id, task_id, attempt, data, limit=limit, dropped=dropped)


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _damaged(exc: BaseException) -> bool:
    """A database error that says the file is unusable (malformed pages, not a database, I/O),
    as opposed to a busy database or a bug in a statement."""
    return (isinstance(exc, sqlite3.DatabaseError) and not _locked(exc)
            and not isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)))


def unusable(path: str | Path, exc: BaseException) -> StateError:
    return StateError(f"cannot open the state database: {exc}", subject=str(path),
                      hint="move the file away (history is lost) or point MLW_HOME elsewhere")


class _Cursor(sqlite3.Cursor):
    """A cursor whose errors on a damaged file become :func:`unusable` (a page can be found
    corrupt by any statement or fetch, long after the file opened fine)."""

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise unusable(getattr(self.connection, "state_path", "state.db"), exc) from None
            raise

    def execute(self, *args):
        return self._call(super().execute, *args)

    def executemany(self, *args):
        return self._call(super().executemany, *args)

    def executescript(self, *args):
        return self._call(super().executescript, *args)

    def fetchone(self):
        return self._call(super().fetchone)

    def fetchmany(self, *args):
        return self._call(super().fetchmany, *args)

    def fetchall(self):
        return self._call(super().fetchall)

    def __next__(self):
        return self._call(super().__next__)


class _Connection(sqlite3.Connection):
    state_path = "state.db"

    def cursor(self, factory=None):
        return super().cursor(factory or _Cursor)

    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def executescript(self, *args):
        return self.cursor().executescript(*args)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, factory=_Connection)
    conn.state_path = str(path)
    return conn


class SQLiteState(StateBackend):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per thread: sqlite3 connections must not be shared across threads.
        self._local = threading.local()
        # A short-lived connection for the schema: a connection left open across a fork and
        # closed later in the child would checkpoint and delete the WAL under the other
        # processes' feet ("file is not a database").
        try:
            # Several processes (or runs in threads) may open a new database at once: switching
            # it to WAL takes an exclusive lock, and SQLite answers "database is locked" there
            # without waiting for the busy timeout, so that is retried (bounded).
            for attempt in Retrying(retry=retry_if_exception(_locked), stop=stop_after_delay(30),
                                    wait=wait_random(0.01, 0.1), reraise=True,
                                    before_sleep=before_sleep_log(log, logging.DEBUG)):
                with attempt:
                    self._create_schema()
        except sqlite3.DatabaseError as exc:
            raise unusable(self.path, exc) from None

    def _create_schema(self) -> None:
        conn = connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            _migrate(conn)
            conn.executescript(SCHEMA)
        finally:
            conn.close()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def save_execution(self, execution: WorkflowExecution) -> None:
        header = execution.model_dump(mode="json", exclude={"tasks", "plan_json"})
        self._conn().execute(
            "INSERT INTO executions (id, workflow_id, status, created, header, plan_json) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET status=excluded.status, header=excluded.header, "
            "plan_json=CASE WHEN excluded.plan_json != '' THEN excluded.plan_json ELSE executions.plan_json END",
            (execution.id, execution.workflow_id, execution.status, execution.created,
             json.dumps(header), execution.plan_json),
        )

    def save_task_results(self, execution_id: str, results: Iterable[TaskResult]) -> None:
        rows = [(execution_id, r.task_id, r.status, r.model_dump_json(), r.cache_key) for r in results]
        if not rows:
            return
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO task_results (execution_id, task_id, status, body, cache_key) VALUES (?,?,?,?,?) "
                "ON CONFLICT(execution_id, task_id) DO UPDATE SET status=excluded.status, body=excluded.body, "
                "cache_key=excluded.cache_key",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _resolve_id(self, execution_id: str) -> str:
        rows = self._conn().execute(
            "SELECT id FROM executions WHERE id = ? OR id LIKE ? ESCAPE '!' LIMIT 3",
            (execution_id, execution_id.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"),
        ).fetchall()
        ids = {r[0] for r in rows}
        if execution_id in ids:
            return execution_id
        if len(ids) == 1:
            return ids.pop()
        if not ids:
            raise StateError(f"no execution {execution_id!r}", subject=str(self.path),
                             hint="`mlw status` lists the known executions")
        raise StateError(f"execution id prefix {execution_id!r} is ambiguous", subject=str(self.path),
                         hint="give more characters of the id")

    def get_execution(self, execution_id: str) -> WorkflowExecution:
        full_id = self._resolve_id(execution_id)
        conn = self._conn()
        header, plan_json = conn.execute(
            "SELECT header, plan_json FROM executions WHERE id = ?", (full_id,)).fetchone()
        tasks = {
            task_id: TaskResult.model_validate_json(body)
            for task_id, body in conn.execute(
                "SELECT task_id, body FROM task_results WHERE execution_id = ? ORDER BY rowid", (full_id,))
        }
        return WorkflowExecution.model_validate({**json.loads(header), "plan_json": plan_json, "tasks": tasks})

    def computed_results(self, cache_keys: Iterable[str]) -> dict[str, TaskResult]:
        keys = list(dict.fromkeys(cache_keys))
        found: dict[str, TaskResult] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, body in conn.execute(
                    f"SELECT cache_key, body FROM task_results WHERE status = 'succeeded' AND cache_key IN ({marks}) "
                    "ORDER BY rowid", chunk):
                found[key] = TaskResult.model_validate_json(body)  # the latest wins
        return found

    def log_target(self) -> dict:
        return {"kind": "sqlite", "path": str(self.path.resolve())}

    def append_attempt_log(self, execution_id: str, task_id: str, attempt: int, data: bytes, *,
                           limit: int, dropped: int = 0) -> None:
        append_log(self._conn(), execution_id, task_id, attempt, data, limit=limit, dropped=dropped)

    def attempt_logs(self, execution_id: str, task_id: str | None = None,
                     attempt: int | None = None) -> list[AttemptLog]:
        full_id = self._resolve_id(execution_id)
        sql = "SELECT l.task_id, l.attempt, l.data, l.total, l.updated FROM attempt_logs l WHERE l.execution_id = ?"
        args: list = [full_id]
        if task_id is not None:
            sql += " AND l.task_id = ?"
            args.append(task_id)
        if attempt is not None:
            sql += " AND l.attempt = ?"
            args.append(attempt)
        rows = self._conn().execute(sql, args).fetchall()
        order = {t: i for i, (t,) in enumerate(self._conn().execute(
            "SELECT task_id FROM task_results WHERE execution_id = ? ORDER BY rowid", (full_id,)))}
        logs = [AttemptLog(t, a, bytes(d).decode("utf-8", "replace"), total, updated) for t, a, d, total, updated in rows]
        return sorted(logs, key=lambda g: (order.get(g.task_id, len(order)), g.task_id, g.attempt))

    def page_executions(self, *, offset: int = 0, limit: int = 50, workflow_id: str | None = None,
                        status: str | None = None) -> tuple[list[WorkflowExecution], int]:
        where, args = [], []
        if workflow_id:
            where.append("workflow_id = ?")
            args.append(workflow_id)
        if status:
            where.append("status = ?")
            args.append(status)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        conn = self._conn()
        (total,) = conn.execute(f"SELECT COUNT(*) FROM executions{clause}", args).fetchone()
        rows = conn.execute(f"SELECT header FROM executions{clause} ORDER BY created DESC LIMIT ? OFFSET ?",
                            (*args, limit, offset)).fetchall()
        return [WorkflowExecution.model_validate(json.loads(h)) for (h,) in rows], total

    def studies(self, *, limit: int = 100) -> list[tuple[str, TaskResult]]:
        rows = self._conn().execute(
            "SELECT execution_id, body FROM task_results WHERE json_extract(body, '$.study') IS NOT NULL "
            "ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall()
        return [(e, TaskResult.model_validate_json(body)) for e, body in rows]

    def workflow_ids(self) -> list[str]:
        return [w for (w,) in self._conn().execute("SELECT DISTINCT workflow_id FROM executions ORDER BY workflow_id")]

    def task_counts(self, execution_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        ids = list(execution_ids)
        out: dict[str, dict[str, int]] = {i: {} for i in ids}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for execution_id, status, n in self._conn().execute(
                    f"SELECT execution_id, status, COUNT(*) FROM task_results WHERE execution_id IN ({marks}) "
                    "GROUP BY execution_id, status", chunk):
                out[execution_id][status] = n
        return out

    def task_statuses(self, execution_id: str) -> tuple[str, dict[str, tuple[str, int]]]:
        full_id = self._resolve_id(execution_id)
        conn = self._conn()
        (status,) = conn.execute("SELECT status FROM executions WHERE id = ?", (full_id,)).fetchone()
        tasks = {t: (st, attempts or 0) for t, st, attempts in conn.execute(
            "SELECT task_id, status, json_extract(body, '$.attempts') FROM task_results WHERE execution_id = ? "
            "ORDER BY rowid", (full_id,))}
        return status, tasks

    def list_executions(self, *, limit: int = 20, workflow_id: str | None = None) -> list[WorkflowExecution]:
        sql = "SELECT header FROM executions"
        args: tuple = ()
        if workflow_id:
            sql += " WHERE workflow_id = ?"
            args = (workflow_id,)
        sql += " ORDER BY created DESC LIMIT ?"
        rows = self._conn().execute(sql, (*args, limit)).fetchall()
        return [WorkflowExecution.model_validate(json.loads(h)) for (h,) in rows]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
