"""Registry metadata in SQLite (``<home>/registry.db``), the embedded default.

Version allocation and alias moves run in ``BEGIN IMMEDIATE`` transactions: SQLite takes the
database's write lock at the start, so two processes promoting at once are serialized and each
one's check (the gate against the current holder) sees the holder it replaces.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from mlflowdsl.runtime.registry.models import AliasCheck, AliasMove, ModelVersion, RegistryError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS model_counters (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (name, alias));
CREATE TABLE IF NOT EXISTS alias_history (name TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alias_history_name ON alias_history (name);
CREATE TABLE IF NOT EXISTS deployments (name TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


class SQLiteRegistryStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # sqlite3 connections must not cross threads
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"cannot open the registry database: {exc}", subject=str(self.path),
                                hint="move the file away (registered models are lost) or point MLW_HOME elsewhere") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        return conn

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ versions

    def allocate_version(self, name: str) -> int:
        def bump(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT last FROM model_counters WHERE name = ?", (name,)).fetchone()
            number = (row[0] if row else 0) + 1
            conn.execute("INSERT INTO model_counters (name, last) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET last = excluded.last", (name, number))
            return number
        return self._write(bump)

    def put_version(self, mv: ModelVersion) -> None:
        self._write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO model_versions (name, version, body) VALUES (?, ?, ?)",
            (mv.name, mv.version, json.dumps(mv.to_dict(), sort_keys=True))))

    def get_version(self, name: str, version: int) -> ModelVersion | None:
        row = self._conn().execute("SELECT body FROM model_versions WHERE name = ? AND version = ?",
                                   (name, version)).fetchone()
        return ModelVersion.from_dict(json.loads(row[0])) if row else None

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        if name is None:
            rows = self._conn().execute("SELECT body FROM model_versions ORDER BY name, version").fetchall()
        else:
            rows = self._conn().execute("SELECT body FROM model_versions WHERE name = ? ORDER BY version",
                                        (name,)).fetchall()
        return [ModelVersion.from_dict(json.loads(r[0])) for r in rows]

    def delete_version(self, name: str, version: int) -> None:
        self._write(lambda conn: conn.execute("DELETE FROM model_versions WHERE name = ? AND version = ?",
                                              (name, version)))

    # ------------------------------------------------------------------ aliases

    def aliases(self, name: str) -> dict[str, int]:
        rows = self._conn().execute("SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias",
                                    (name,)).fetchall()
        return {alias: version for alias, version in rows}

    def move_alias(self, name: str, alias: str, version: int | None, *, by: str,
                   check: AliasCheck | None = None) -> AliasMove:
        def move(conn: sqlite3.Connection) -> AliasMove:
            row = conn.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?",
                               (name, alias)).fetchone()
            previous = row[0] if row else None
            holder = self.get_version(name, previous) if previous is not None else None
            gate = check(holder) if check is not None else []
            if version is None:
                conn.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
            else:
                conn.execute("INSERT INTO model_aliases (name, alias, version) VALUES (?, ?, ?) "
                             "ON CONFLICT(name, alias) DO UPDATE SET version = excluded.version",
                             (name, alias, version))
            entry = AliasMove(name, alias, version, previous, time.time(), by, gate)
            conn.execute("INSERT INTO alias_history (name, body) VALUES (?, ?)", (name, json.dumps(entry.to_dict())))
            return entry
        return self._write(move)

    def alias_history(self, name: str) -> list[AliasMove]:
        rows = self._conn().execute("SELECT body FROM alias_history WHERE name = ? ORDER BY rowid", (name,)).fetchall()
        return [AliasMove.from_dict(json.loads(r[0])) for r in rows]

    # ------------------------------------------------------------------ deployments

    def put_deployment(self, record: dict[str, Any]) -> None:
        self._write(lambda conn: conn.execute("INSERT OR REPLACE INTO deployments (name, body) VALUES (?, ?)",
                                              (record["name"], json.dumps(record, sort_keys=True))))

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT body FROM deployments WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def deployments(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._conn().execute("SELECT body FROM deployments ORDER BY name")]

    def delete_deployment(self, name: str) -> None:
        self._write(lambda conn: conn.execute("DELETE FROM deployments WHERE name = ?", (name,)))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
