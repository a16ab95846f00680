"""The store's core: connections per thread, short transactions, failures, fencing.

Every public method of the store is one short transaction.  Writes use a write
transaction that serializes against all other writers of the stack, in this
process and in others (the backend's primitive: ``BEGIN IMMEDIATE`` in SQLite,
an advisory lock per stack in PostgreSQL); a per-store mutex also serializes
write transactions inside one process, so threads queue in Python instead of
spinning in SQLite's busy handler.  Readers are never blocked.  The store keeps
one connection per thread (created on first use, all closed by ``close``), so
it may be shared by the engine's worker threads.

Failures of the database itself become diagnostics (:meth:`StoreCore._raise_for`):
``state-busy``, ``state-connect`` and the backend's own (``state-corrupt``,
``state-readonly``, ``state-full``, ``state-io``, ``state-error``).

Fencing (:meth:`StoreCore._fence`): a write of a stack checks, inside its own
write transaction, that the lock row still carries the generation its writer
got (:class:`LockLost` otherwise), and a store that holds no lock may not write
a stack someone else has locked (:class:`StackLocked`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cloudtmpl.diagnostics import error
from cloudtmpl.state.backend import BUSY_TIMEOUT_MS, Backend, HeldLock, Tx
from cloudtmpl.state.records import (
    LOCK_COLUMNS,
    Clock,
    LockLost,
    StackLocked,
    StateError,
    lock_from_row,
    ts,
    utcnow,
)
from cloudtmpl.state.schema import SCHEMA_KEY, ensure_schema


class StoreCore:
    """Connections, transactions and fencing, shared by the store's parts."""

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Clock = utcnow,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._host = host if host is not None else socket.gethostname()
        self._pid = pid if pid is not None else os.getpid()
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_guard = threading.Lock()
        self._write_mutex = threading.Lock()
        self._lock_sessions: dict[str, HeldLock] = {}  # stack -> held lock
        self._held: dict[str, tuple[str, int]] = {}  # stack -> (holder, generation)
        self._closed = False

    # ------------------------------------------------------------ life cycle

    def close(self) -> None:
        """Close every connection this store opened (in any thread).

        On PostgreSQL this also ends the sessions of locks still held, so other
        processes see those locks as stale (and take them over, with an audit line).
        """
        with self._conns_guard:
            self._closed = True
            conns, self._conns = self._conns, []
            sessions, self._lock_sessions = list(self._lock_sessions.values()), {}
            self._held = {}
        for session in sessions:
            session.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

    @property
    def url(self) -> str:
        """The URL to reopen this store.  It may carry a password: show :attr:`description`."""
        return self._backend.url

    @property
    def description(self) -> str:
        """The store's URL without any password, for messages."""
        return self._backend.description

    # ------------------------------------------------------------ transactions

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not self._closed:
            return conn
        with self._conns_guard:
            if self._closed:
                raise StateError("the state store is closed")
            conn = self._backend.connect()
            self._conns.append(conn)
        self._local.conn = conn
        return conn

    def _connection(self) -> Any:
        """This thread's connection; a failure to open it is a diagnostic."""
        try:
            return self._conn()
        except Exception as exc:
            self._raise_for(exc)
            raise

    @contextmanager
    def _write(self, key: str | None = None, *, fenced: bool = True) -> Iterator[Tx]:
        """One write transaction; writers of the same ``key`` (a stack) queue on each other.

        SQLite serializes every writer (``BEGIN IMMEDIATE``); PostgreSQL only
        those with the same key (a transaction-level advisory lock).  A write of a
        stack is ``fenced`` (:meth:`_fence`) unless it is one of the lock's own.
        """
        conn = self._connection()
        with self._write_mutex:
            try:
                self._backend.begin_write(conn)
                tx = Tx(conn.cursor(), self._backend)
                if key is not None:
                    self._backend.serialize(tx, key)
                    if fenced:
                        self._fence(tx, key)
            except Exception as exc:
                self._rollback(conn)
                self._raise_for(exc)
                raise
            try:
                yield tx
            except BaseException as exc:
                self._rollback(conn)
                if isinstance(exc, Exception):
                    self._raise_for(exc)
                raise
            try:
                conn.commit()
            except Exception as exc:
                self._rollback(conn)
                self._raise_for(exc)
                raise

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        """One read transaction (a consistent snapshot across its statements)."""
        conn = self._connection()
        try:
            self._backend.begin_read(conn)
        except Exception as exc:
            self._rollback(conn)
            self._raise_for(exc)
            raise
        try:
            yield Tx(conn.cursor(), self._backend)
        except Exception as exc:
            self._raise_for(exc)
            raise
        finally:
            self._rollback(conn)

    def _rollback(self, conn: Any) -> None:
        """Roll back; a connection that cannot even do that is dropped (never raises)."""
        try:
            conn.rollback()
        except Exception:
            if getattr(self._local, "conn", None) is conn:
                self._local.conn = None  # a fresh one on the next call
            with contextlib.suppress(Exception):
                conn.close()

    def _raise_for(self, exc: Exception) -> None:
        """Turn a database failure into a diagnostic: busy, a lost connection, a damaged,
        read-only or full database.  Anything else (StateError, LockLost, ...) passes."""
        if self._backend.is_busy(exc):
            raise error(
                "state-busy",
                f"the state database {self._backend.description} stayed busy for "
                f"{BUSY_TIMEOUT_MS // 1000}s: {self._backend.redact(str(exc))}",
                hint="another cloudtmpl process is writing to it; try again",
            ) from exc
        if self._backend.is_disconnect(exc):
            self._local.conn = None  # reconnect on the next call
            raise error(
                "state-connect",
                f"lost the connection to the state database {self._backend.description}: "
                f"{self._backend.redact(str(exc).strip())}",
                hint="is the database server still running and reachable? State is "
                "journaled: the next apply sees any step left half-done",
            ) from None
        failure = self._backend.failure(exc)
        if failure is not None:
            raise failure from None

    def _fence(self, tx: Tx, stack: str) -> None:
        """The fencing check of every write of ``stack``, inside its write transaction.

        A store that holds the stack's lock writes only while the lock record
        still carries the generation it got (else :class:`LockLost`); a store that
        does not hold it writes only while nobody does (else :class:`StackLocked`).
        """
        row = tx.one(f"SELECT {LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
        held = self._held.get(stack)
        if held is None:
            if row is not None:
                raise StackLocked(lock_from_row(stack, row))
            return
        if row is None:
            raise LockLost(stack, "its lock record was removed (a forced unlock)")
        if int(row[4]) != held[1]:
            raise LockLost(stack, f"{row[0]} took it over")

    def _init_schema(self) -> None:
        # One key for all schema work: two processes creating or migrating at once queue.
        with self._write(SCHEMA_KEY, fenced=False) as tx:
            ensure_schema(tx, self._backend)

    def schema_version(self) -> int:
        with self._read() as tx:
            row = tx.one("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0]) if row else 0

    # ------------------------------------------------------------ small helpers

    def _now(self) -> str:
        return ts(self._clock())

    def _ensure_stack(self, tx: Tx, stack: str, now: str) -> None:
        tx.run(
            "INSERT INTO stacks (name, serial, created, updated) VALUES (?, 0, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (stack, now, now),
        )

    def _bump(self, tx: Tx, stack: str, now: str) -> None:
        self._ensure_stack(tx, stack, now)
        tx.run("UPDATE stacks SET serial = serial + 1, updated = ? WHERE name = ?", (now, stack))

    def _audit(self, tx: Tx, stack: str, who: str, what: str, now: str) -> None:
        tx.run(
            "INSERT INTO audit (at, stack, who, what) VALUES (?, ?, ?, ?)", (now, stack, who, what)
        )
