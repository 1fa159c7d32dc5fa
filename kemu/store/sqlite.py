"""SQLiteStore: etcd semantics on one SQLite file, shared by every process of a lab.

Files are created 0600 (the store holds Secrets in clear; SQLite gives `-wal` and `-shm` the database's mode).
One revision per transaction. A writer touches `<db>.notify` after each commit; a watch wakes when inotify reports
that (or any write in the database's directory), then reads `PRAGMA data_version`, which changes only when another connection committed; so an
idle watch costs nothing and a change is seen within a millisecond or so. If inotify is unavailable the watch falls
back to polling every POLL_INTERVAL. History is compacted to the last `keep_events` changes.
"""
from __future__ import annotations

import ctypes
import os
import select
import sqlite3
import threading
import time

from kemu.store.base import Compacted, Compare, Delete, Event, KeyValue, Put, Store, TxnResult, Watcher, check_request

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
                               mod_rev INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY AUTOINCREMENT, rev INTEGER NOT NULL, key TEXT NOT NULL,
                                type TEXT NOT NULL, value BLOB, prev_value BLOB);
CREATE INDEX IF NOT EXISTS log_rev ON log(rev);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 1), ('compacted', 0);
"""
POLL_INTERVAL = 0.01
IDLE_RECHECK = 0.5      # with inotify, re-read anyway this often (belt and braces)
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_CREATE = 0x100


class _DirNotifier:
    """One thread per process and directory: inotify on the database directory, broadcasting every write."""

    _instances: dict[str, "_DirNotifier"] = {}
    _lock = threading.Lock()

    def __init__(self, directory: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, directory.encode(),
                                                 IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), "inotify unavailable")
        self.generation = 0
        self.cond = threading.Condition()
        threading.Thread(target=self._run, name="store-notify", daemon=True).start()

    @classmethod
    def for_path(cls, db_path: str) -> "_DirNotifier | None":
        directory = os.path.dirname(os.path.abspath(db_path))
        with cls._lock:
            if directory not in cls._instances:
                try:
                    cls._instances[directory] = cls(directory)
                except OSError:
                    return None
            return cls._instances[directory]

    def _run(self) -> None:
        while True:
            select.select([self.fd], [], [])
            os.read(self.fd, 65536)
            with self.cond:
                self.generation += 1
                self.cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until a write after generation `seen` (or timeout); returns the current generation."""
        with self.cond:
            if self.generation == seen:
                self.cond.wait(timeout)
            return self.generation


def _prefix_upper(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"


class SQLiteStore(Store):
    def __init__(self, path: str, keep_events: int = 20000) -> None:
        self.path = path
        self.keep_events = keep_events
        self._local = threading.local()
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        self._notify_path = path + ".notify"
        for own in (path, self._notify_path):   # root-only; SQLite gives -wal and -shm the database file's mode
            os.close(os.open(own, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = self._conn()
        conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def get(self, key: str) -> KeyValue | None:
        row = self._conn().execute("SELECT key, value, create_rev, mod_rev, version FROM kv WHERE key=?",
                                   (key,)).fetchone()
        return KeyValue(*row) if row else None

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            rows = conn.execute("SELECT key, value, create_rev, mod_rev, version FROM kv WHERE key >= ? AND key < ? "
                                "ORDER BY key", (prefix, _prefix_upper(prefix))).fetchall()
            rev = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
        finally:
            conn.execute("COMMIT")
        return [KeyValue(*r) for r in rows], rev

    def revision(self) -> int:
        return self._conn().execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]

    def txn(self, compares: list[Compare], success: list[Put | Delete],
            failure: list[Put | Delete] | None = None) -> TxnResult:
        check_request(success + (failure or []))
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ok = all(self._mod_rev(conn, c.key) == c.mod_revision for c in compares)
            ops = success if ok else (failure or [])
            rev = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
            written: dict[str, int] = {}
            if ops:
                rev += 1
                for op in ops:
                    written[op.key] = self._apply(conn, op, rev)
                conn.execute("UPDATE meta SET value=? WHERE name='revision'", (rev,))
                if rev % 1000 == 0:
                    self._compact(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if ops:
            os.utime(self._notify_path)   # wakes watchers in every process, after the commit is visible
        return TxnResult(ok, rev, written)

    @staticmethod
    def _mod_rev(conn: sqlite3.Connection, key: str) -> int:
        row = conn.execute("SELECT mod_rev FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _apply(conn: sqlite3.Connection, op: Put | Delete, rev: int) -> int:
        prev = conn.execute("SELECT value, create_rev, version FROM kv WHERE key=?", (op.key,)).fetchone()
        if isinstance(op, Put):
            create_rev, version = (prev[1], prev[2] + 1) if prev else (rev, 1)
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?,?,?,?,?)", (op.key, op.value, create_rev, rev, version))
            conn.execute("INSERT INTO log (rev, key, type, value, prev_value) VALUES (?,?,?,?,?)",
                         (rev, op.key, "PUT", op.value, prev[0] if prev else None))
            return rev
        if prev:
            conn.execute("DELETE FROM kv WHERE key=?", (op.key,))
            conn.execute("INSERT INTO log (rev, key, type, value, prev_value) VALUES (?,?,?,?,?)",
                         (rev, op.key, "DELETE", None, prev[0]))
        return 0

    def _compact(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT rev FROM log ORDER BY id DESC LIMIT 1 OFFSET ?", (self.keep_events,)).fetchone()
        if row:
            conn.execute("DELETE FROM log WHERE rev <= ?", (row[0],))
            conn.execute("UPDATE meta SET value=? WHERE name='compacted'", (row[0],))

    def watch(self, prefix: str, start_revision: int) -> Watcher:
        return _SQLiteWatcher(self._connect(), prefix, start_revision, _DirNotifier.for_path(self.path))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _SQLiteWatcher(Watcher):
    def __init__(self, conn: sqlite3.Connection, prefix: str, start_revision: int,
                 notifier: _DirNotifier | None) -> None:
        self._conn = conn
        self._notifier = notifier
        self._generation = -1
        self._prefix = prefix
        self._upper = _prefix_upper(prefix)
        self._next_rev = start_revision
        self._data_version = -1
        self._closed = False

    def next_batch(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not self._closed:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._data_version = version
                events = self._read()
                if events:
                    return events
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self._notifier is None:
                time.sleep(min(POLL_INTERVAL, remaining))
            else:
                self._generation = self._notifier.wait(self._generation, min(IDLE_RECHECK, remaining))
        return []

    def _read(self) -> list[Event]:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            compacted = conn.execute("SELECT value FROM meta WHERE name='compacted'").fetchone()[0]
            if self._next_rev <= compacted:
                raise Compacted(f"revision {self._next_rev} is compacted (at {compacted})")
            rows = conn.execute("SELECT rev, key, type, value, prev_value FROM log WHERE rev >= ? AND key >= ? "
                                "AND key < ? ORDER BY id", (self._next_rev, self._prefix, self._upper)).fetchall()
            current = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
        finally:
            conn.execute("COMMIT")
        self._next_rev = current + 1
        return [Event(type=t, key=k, value=v, revision=r, prev_value=p) for r, k, t, v, p in rows]

    def close(self) -> None:
        self._closed = True
        self._conn.close()
