"""What a database backend provides, and the cursor the store's SQL runs on.

The store's SQL is plain SQL that SQLite (>= 3.35) and PostgreSQL both accept
(``INSERT ... ON CONFLICT``, ``RETURNING``, ``?`` placeholders translated by the
backend).  Everything database-specific - connecting, pragmas, the
write-transaction primitive, per-key write serialization, the auto-increment
column type, the held half of the stack lock, error classification - lives in a
:class:`Backend`: :mod:`cloudtmpl.state.sqlite` or :mod:`cloudtmpl.state.postgres`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.state.records import LockInfo

BUSY_TIMEOUT_MS = 30_000


class Tx:
    """A cursor inside one transaction, with the backend's placeholder style."""

    def __init__(self, cursor: Any, backend: Backend) -> None:
        self._cur = cursor
        self._backend = backend

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(self._backend.sql(sql), tuple(params))
        return int(self._cur.rowcount)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(self._backend.sql(sql), tuple(params))
        return [tuple(row) for row in self._cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cur.execute(self._backend.sql(sql), tuple(params))
        rows = self._cur.fetchall()  # drain the statement (RETURNING must run to completion)
        return tuple(rows[0]) if rows else None


class HeldLock(Protocol):
    """The half of the stack lock that ends by itself when its holder ends."""

    def try_acquire(self) -> bool: ...
    def alive(self) -> bool: ...  # still held (False: the session ended)
    def release(self) -> None: ...  # unlock and close
    def close(self) -> None: ...
    @property
    def backend_pid(self) -> int: ...  # who holds it, as lock_session_holder names it


class Backend(Protocol):
    """The database specifics; everything else in the store is portable SQL."""

    url: str  # what open() was given, to reopen it (may carry a password: never show it)
    description: str  # for messages: never contains a password
    autoinc_pk: str  # column type of an auto-increment integer primary key

    def connect(self) -> Any: ...  # a DB-API connection in autocommit mode
    def begin_write(self, conn: Any) -> None: ...  # start a write transaction
    def serialize(self, tx: Tx, key: str) -> None: ...  # writers of ``key`` queue here
    def begin_read(self, conn: Any) -> None: ...
    def sql(self, text: str) -> str: ...  # placeholder translation (``?`` is used here)
    def is_busy(self, exc: BaseException) -> bool: ...
    def is_disconnect(self, exc: BaseException) -> bool: ...
    def redact(self, text: str) -> str: ...

    def failure(self, exc: BaseException) -> DiagnosticError | None: ...  # a database error

    # The held half of the stack lock (see cloudtmpl.state.lock), and why a free one is stale.
    stale_reason: str
    def session_lock(self, stack: str) -> HeldLock: ...
    def lock_session_holder(self, tx: Tx, stack: str) -> LockInfo | None: ...
    def end_session(self, tx: Tx, backend_pid: int) -> None: ...
