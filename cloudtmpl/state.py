"""The state store: a per-stack cache of what was applied, a step journal and a lock.

State is a cache and a journal, never the only record of what exists: the cloud
is the source of truth and every resource carries ownership tags or a
deterministic name, by which discovery finds it.  Losing the state costs a discovery pass,
not resources.

What the store holds, per stack:

* ``resources`` - address -> :class:`ResourceRecord` (target, region, physical
  id, last-applied spec and its hash, attributes).  Every change bumps the
  stack's ``serial``; a plan file records the serial it saw.
* ``outputs`` - output name -> JSON value, in the template's order.
* ``stacks.template`` - the template file the stack was last applied from (its path
  relative to the project directory, POSIX form), so that applying another file
  onto the stack is noticed; NULL for a stack written before schema 3.
* ``runs`` and ``journal`` - each apply/destroy is a run; every step is written
  *before* it starts (phase ``intent``) and *after* it ends (``done`` or
  ``failed``).  Each journal call commits before it returns, so after a kill at
  any instant :meth:`StateStore.open_intents` tells the next run which steps may
  be half-done and must be looked up in the cloud before being retried.
* ``locks`` - one apply/destroy per stack at a time; a second one fails at once
  with :class:`StackLocked` naming the holder.  The row carries the lock's
  generation (``stacks.lock_generation`` counts acquisitions): the fencing token
  that every write of the stack is checked against (cloudtmpl/statelock.py).
* ``audit`` - lock take-overs, forced unlocks, forgotten stacks.

Secrets: the store never receives clear-text secrets.  Hidden parameters,
generated passwords and private keys are redacted by the engine *before*
anything reaches ``put_resource``, ``set_outputs`` or ``journal``; the store
writes what it is given and does not try to detect secrets itself.  The database
file is nevertheless created with mode 0600 in a 0700 directory.

Concurrency:

* Every public method is one short transaction.  Writes use a write
  transaction that serializes against all other writers, in this process and in
  others (``BEGIN IMMEDIATE`` in SQLite, WAL mode, a busy timeout).
* Thread safety: the store keeps one connection per thread (created on first
  use, all closed by :meth:`StateStore.close`).  In addition a per-store mutex
  serializes write transactions inside one process, so threads queue in Python
  instead of spinning in SQLite's busy handler; readers are never blocked (WAL).
  A store may therefore be shared by the engine's worker threads.
* The lock (:meth:`StateStore.acquire_lock`) is a row in ``locks`` claimed in a
  write transaction, so two processes cannot both take it, under a lock that the
  kernel drops when its holder ends (an exclusive ``flock`` on
  ``state.db.locks/<stack>.lock``, held open for as long as the lock is held).
  A row whose lock file nobody holds is stale - its process ended, however and
  wherever (a PID namespace records pid 1) - and is taken over automatically,
  with an audit line.
* Fencing: a write of a stack checks, inside its own write transaction, that
  the lock row still carries the generation its writer got (:class:`LockLost`
  otherwise), and a store that holds no lock may not write a stack someone else
  has locked.  A holder whose lock was taken over or force-removed writes
  nothing more, whether or not it noticed (:meth:`StateStore.check_lock`).
* Failures of the database itself (a damaged file, a read-only file or
  directory, a full disk, an I/O error) are diagnostics with a hint
  (``state-corrupt``, ``state-readonly``, ``state-full``, ``state-io``).

PostgreSQL (``postgresql://`` or ``postgres://`` URLs, psycopg 3):

* Same tables and SQL.  Write transactions are READ COMMITTED; writers of one
  stack queue on a transaction-level advisory lock keyed by the stack
  (``pg_advisory_xact_lock``), which is what keeps the journal's ``seq``
  (``MAX(seq) + 1``) and the outputs' delete-and-insert correct across
  processes.  Schema creation and migration take the same kind of lock on a
  key of their own, so two processes opening a new database at once are safe.
  Reads run in REPEATABLE READ READ ONLY transactions (one snapshot).
* The stack lock is a *session-level* advisory lock (``pg_try_advisory_lock``
  on a 64-bit hash of the stack name) held on a connection of its own for as
  long as the lock is held, plus the ``locks`` row naming holder, pid, host and
  since.  The server drops the advisory lock when that session ends - the
  holder released it, closed the store, or died (SIGKILL closes its socket; a
  vanished host is noticed through TCP keepalives) - so liveness does not
  depend on pids: a row whose advisory lock is free is stale, whatever host
  wrote it, and is taken over with an audit line.  Taking, releasing and
  force-removing the lock all run under the stack's transaction-level lock, so
  nobody ever sees the advisory lock held without its row.  A forced unlock
  also ends the holder's lock session (``pg_terminate_backend``).  A holder
  whose session ended (terminated, or a broken connection) notices before its
  next step; the fencing token keeps it from writing once another run took the
  lock over.
* Connection failures are ``state-connect`` diagnostics; no message, hint or
  :attr:`StateStore.description` ever contains the password.

Portability: the SQL below is plain SQL that SQLite (>= 3.35) and PostgreSQL
both accept (``INSERT ... ON CONFLICT``, ``RETURNING``, ``?`` placeholders
translated by the backend).  Everything database-specific - connecting, pragmas,
the write-transaction primitive, per-key write serialization, the auto-increment
column type, session locks, error classification - lives in
:class:`_SQLiteBackend` and :class:`_PostgresBackend`, behind the small
:class:`_Backend` protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, error
from cloudtmpl.model import LiveResource, spec_hash
from cloudtmpl.statelock import (
    FileLock,
    HeldLock,
    LockInfo,
    LockLost,
    PgSessionLock,
    StackLocked,
    lock_file,
    pid_alive,
)

__all__ = [
    "SCHEMA_VERSION",
    "AuditEntry",
    "JournalEntry",
    "LockInfo",
    "LockLost",
    "Operation",
    "Phase",
    "ResourceRecord",
    "RunInfo",
    "RunStatus",
    "StackLocked",
    "StackSummary",
    "StateError",
    "StateStore",
    "StateValueError",
    "default_state_url",
    "project_dir",
]

PROJECT_FILE = "cloudtmpl.yaml"
STATE_DIR = ".cloudtmpl"
STATE_FILE = "state.db"

SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10  # PostgreSQL: unless the URL sets connect_timeout
DEAD_SESSION_GRACE_S = 5.0  # PostgreSQL: how long a dead local holder's session may take to end

Operation = Literal["apply", "destroy"]
RunStatus = Literal["running", "succeeded", "failed", "interrupted"]
Phase = Literal["intent", "done", "failed"]

_OPERATIONS = ("apply", "destroy")
_END_STATUSES = ("succeeded", "failed", "interrupted")
_PHASES = ("intent", "done", "failed")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- paths


def project_dir(cwd: Path) -> Path:
    """The nearest directory upward from ``cwd`` holding ``cloudtmpl.yaml``, else ``cwd``."""
    start = Path(cwd).absolute()
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file():
            return directory
    return start


def default_state_url(cwd: Path) -> str:
    """``sqlite:///<project_dir>/.cloudtmpl/state.db`` (an absolute path after ``sqlite:///``)."""
    path = project_dir(cwd) / STATE_DIR / STATE_FILE
    return f"sqlite:///{path.as_posix()}"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ResourceRecord:
    """What the last apply did to one resource (a cache of the cloud, not the truth)."""

    address: str
    kind: str
    target: str
    region: str
    physical_id: str
    name: str
    spec: Mapping[str, Any] = field(default_factory=dict)  # resolved, redacted properties
    spec_hash: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_live(live: LiveResource, spec: Mapping[str, Any]) -> ResourceRecord:
        """A record for ``live`` after it was made to match ``spec``."""
        return ResourceRecord(
            address=live.address,
            kind=live.kind,
            target=live.placement.target,
            region=live.placement.region,
            physical_id=live.physical_id,
            name=live.name,
            spec=spec,
            spec_hash=spec_hash(spec),
            attributes=live.attributes,
        )


@dataclass(frozen=True)
class JournalEntry:
    run_id: int
    seq: int
    address: str
    action: str
    phase: Phase
    physical_id: str | None
    detail: Mapping[str, Any] | None
    at: datetime


@dataclass(frozen=True)
class RunInfo:
    id: int
    stack: str
    operation: Operation
    holder: str
    started: datetime
    finished: datetime | None
    status: RunStatus


@dataclass(frozen=True)
class StackSummary:
    """One line of ``cloudtmpl state list``."""

    name: str
    serial: int
    resources: int
    outputs: int
    updated: datetime | None
    lock: LockInfo | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    stack: str
    who: str
    what: str


# --------------------------------------------------------------------------- errors


class StateError(Exception):
    """The store was used wrongly (a programming error, not a user error)."""


class StateValueError(StateError, DiagnosticError):
    """A value that the state cannot hold (not plain JSON): a ``state-value`` diagnostic."""


# --------------------------------------------------------------------------- backends


class _Backend(Protocol):
    """The database specifics; everything else in this module is portable SQL."""

    url: str  # what open() was given, to reopen it (may carry a password: never show it)
    description: str  # for messages: never contains a password
    autoinc_pk: str  # column type of an auto-increment integer primary key

    def connect(self) -> Any: ...  # a DB-API connection in autocommit mode
    def begin_write(self, conn: Any) -> None: ...  # start a write transaction
    def serialize(self, tx: _Tx, key: str) -> None: ...  # writers of ``key`` queue here
    def begin_read(self, conn: Any) -> None: ...
    def sql(self, text: str) -> str: ...  # placeholder translation (``?`` is used here)
    def is_busy(self, exc: BaseException) -> bool: ...
    def is_disconnect(self, exc: BaseException) -> bool: ...
    def redact(self, text: str) -> str: ...

    def failure(self, exc: BaseException) -> DiagnosticError | None: ...  # a database error

    # The held half of the stack lock (see cloudtmpl.statelock), and why a free one is stale.
    stale_reason: str
    def session_lock(self, stack: str) -> HeldLock: ...
    def lock_session_holder(self, tx: _Tx, stack: str) -> LockInfo | None: ...
    def end_session(self, tx: _Tx, backend_pid: int) -> None: ...


class _SQLiteBackend:
    """SQLite: WAL, a busy timeout, ``BEGIN IMMEDIATE`` as the write primitive."""

    autoinc_pk = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"sqlite:///{path.as_posix()}"
        self.url = self.description

    def prepare(self) -> None:
        """Create the directory (0700) and the file (0600) before SQLite opens it."""
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(parents=True, mode=0o700)
            os.chmod(directory, 0o700)
        elif directory.name == STATE_DIR and directory.stat().st_uid == os.getuid() \
                and directory.stat().st_mode & 0o777 != 0o700:
            # our own .cloudtmpl directory, perhaps created earlier by something else
            os.chmod(directory, 0o700)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN ourselves
            check_same_thread=False,  # one connection per thread, but close() may run anywhere
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is on disk when it returns (the journal must survive a crash).
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def serialize(self, tx: _Tx, key: str) -> None:
        pass  # BEGIN IMMEDIATE already serializes every writer

    def begin_read(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def sql(self, text: str) -> str:
        return text

    def is_busy(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in text or "busy" in text
        )

    def is_disconnect(self, exc: BaseException) -> bool:
        return False

    def redact(self, text: str) -> str:
        return text

    def failure(self, exc: BaseException) -> DiagnosticError | None:
        return _sqlite_failure(exc, self.path) if isinstance(exc, sqlite3.Error) else None

    stale_reason = "its process ended (the lock file is free)"

    def session_lock(self, stack: str) -> HeldLock:
        return FileLock(lock_file(self.path, stack))

    def lock_session_holder(self, tx: _Tx, stack: str) -> LockInfo | None:
        return FileLock(lock_file(self.path, stack)).holder(stack)

    def end_session(self, tx: _Tx, backend_pid: int) -> None:
        pass  # a process's flock cannot be taken from it: its removed record fences it


# SQLite's primary result codes (the low byte of Python 3.11's ``sqlite_errorcode``; the
# message is matched as well, for Python 3.10)
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_AUTH, _SQLITE_NOTADB = 13, 14, 23, 26


def _sqlite_failure(exc: sqlite3.Error, path: Path) -> DiagnosticError:
    """A diagnostic for an SQLite failure: a damaged, read-only or full database."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    lowered = text.lower()
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in lowered \
            or "not a database" in lowered:
        return error(
            "state-corrupt", f"the state database {path} is damaged: {text}",
            hint="the state is a cache of what the clouds hold: move the damaged file "
            f"aside (mv {path} {path}.damaged - keep it to look into) and run `cloudtmpl "
            "plan`; the stack is found again in the clouds by its tags",
        )
    if primary in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_AUTH, _SQLITE_CANTOPEN) \
            or "readonly" in lowered or "unable to open" in lowered:
        return error(
            "state-readonly", f"cannot write the state database {path}: {text}",
            hint="cloudtmpl writes the file, its -wal and -shm files and the lock files "
            "beside it: make them and their directory writable for this user (immutable? "
            "lsattr, chattr -i; a read-only mount?), or choose another place with --state",
        )
    if primary == _SQLITE_FULL or "full" in lowered:
        return error(
            "state-full", f"cannot write the state database {path}: {text}",
            hint="free space on the file system that holds it (or raise the file size "
            "limit, ulimit -f), then run the command again: steps are journaled, and the "
            "next run finds in the clouds whatever this one left half-done",
        )
    if primary == _SQLITE_IOERR or "i/o" in lowered:
        return error(
            "state-io", f"cannot read or write the state database {path}: {text}",
            hint="check the disk and the file system that hold it (full, failing, "
            "unmounted?), then run the command again",
        )
    return error(
        "state-error", f"the state database {path} failed: {text}",
        hint="run the command again; if it keeps failing, the file may be damaged: "
        "move it aside and run `cloudtmpl plan` (the clouds are the source of truth)",
    )


def _key64(text: str) -> int:
    """A stable signed 64-bit advisory-lock key (Python's hash() differs per process)."""
    digest = hashlib.sha256(b"cloudtmpl-lock:" + text.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _key32(text: str) -> int:
    digest = hashlib.sha256(b"cloudtmpl-write:" + text.encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


# Transaction-level write locks use the two-int4 key space (classid = this namespace);
# stack locks use the int8 key space, so the two never collide (pg_locks.objsubid 2 vs 1).
_PG_WRITE_NAMESPACE = 0x636C_746D  # "cltm"
_PG_SCHEMA_KEY = "#schema"  # not a valid stack name


class _PostgresBackend:
    """PostgreSQL through psycopg 3: advisory locks for writers of a stack and for the lock."""

    autoinc_pk = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    def __init__(self, url: str) -> None:
        import psycopg  # imported here: ~75 ms that SQLite users need not pay
        from psycopg.conninfo import conninfo_to_dict

        self._pg = psycopg
        self.url = url
        self._secrets = _url_secrets(url)
        self.description = _describe_pg_url(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise error(
                "state-url",
                f"invalid PostgreSQL state URL {self.description}: {self.redact(str(exc))}",
                hint="postgresql://USER@HOST:PORT/DATABASE (give the password in PGPASSWORD "
                "or ~/.pgpass rather than in the URL)",
            ) from None
        if params.get("password"):
            self._secrets.add(str(params["password"]))
        self._extra: dict[str, Any] = {}
        if "connect_timeout" not in params:
            self._extra["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in params:
            self._extra["application_name"] = "cloudtmpl"

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _connect(self, **extra: Any) -> Any:
        try:
            conn = self._pg.connect(self.url, autocommit=True, **{**self._extra, **extra})
        except self._pg.Error as exc:
            raise error(
                "state-connect",
                f"cannot connect to the state database {self.description}: "
                f"{self.redact(str(exc).strip())}",
                hint="check the host, port, database, user and password of the state URL "
                "(--state or CLOUDTMPL_STATE; a password can also come from PGPASSWORD or "
                "~/.pgpass) and that the server is running and reachable from here",
            ) from None
        try:
            conn.execute("SET client_min_messages = warning")  # no 'already exists' notices
            conn.execute(f"SET lock_timeout = {BUSY_TIMEOUT_MS}")
        except BaseException:
            conn.close()
            raise
        return conn

    def connect(self) -> Any:
        return self._connect()

    def begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")

    def serialize(self, tx: _Tx, key: str) -> None:
        tx.run("SELECT pg_advisory_xact_lock(?::integer, ?::integer)",
               (_PG_WRITE_NAMESPACE, _key32(key)))

    def begin_read(self, conn: Any) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def is_busy(self, exc: BaseException) -> bool:
        errors = self._pg.errors
        return isinstance(
            exc, (errors.LockNotAvailable, errors.DeadlockDetected, errors.SerializationFailure)
        )

    def is_disconnect(self, exc: BaseException) -> bool:
        return isinstance(exc, self._pg.OperationalError) and not self.is_busy(exc)

    def failure(self, exc: BaseException) -> DiagnosticError | None:
        if not isinstance(exc, self._pg.Error):
            return None
        return error(
            "state-error",
            f"the state database {self.description} refused a request: "
            f"{self.redact(str(exc).strip())}",
            hint="run the command again; if it keeps failing, ask the database's "
            "administrator (disk space, permissions of this user on the tables)",
        )

    stale_reason = "its database session ended"

    def session_lock(self, stack: str) -> HeldLock:
        conn = self._connect(application_name=f"cloudtmpl lock {stack}"[:63])
        try:
            # Let the server notice a vanished client host within about two minutes.
            conn.execute("SET tcp_keepalives_idle = 60")
            conn.execute("SET tcp_keepalives_interval = 10")
            conn.execute("SET tcp_keepalives_count = 6")
        except BaseException:
            conn.close()
            raise
        return PgSessionLock(conn, _key64(stack))

    def lock_session_holder(self, tx: _Tx, stack: str) -> LockInfo | None:
        """Who holds the stack's advisory lock (a session whose ``locks`` row is gone)."""
        unsigned = _key64(stack) & 0xFFFF_FFFF_FFFF_FFFF
        row = tx.one(
            "SELECT a.pid, COALESCE(host(a.client_addr), 'local socket'), a.backend_start, "
            "a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = ? AND l.objid::bigint = ?",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        )
        if row is None:
            return None
        started = row[2] if isinstance(row[2], datetime) else _utcnow()
        return LockInfo(
            stack, f"a database session with no lock record ({row[3] or 'unnamed'})",
            int(row[0]), f"{row[1]} (database backend pid {row[0]})", started,
        )

    def end_session(self, tx: _Tx, backend_pid: int) -> None:
        try:
            row = tx.one("SELECT pg_terminate_backend(?, 5000)", (backend_pid,))
        except self._pg.errors.InsufficientPrivilege as exc:
            raise error(
                "state-unlock",
                f"cannot end the lock holder's database session (backend pid {backend_pid}): "
                f"{self.redact(str(exc).strip())}",
                hint=f"ask a database administrator to run SELECT pg_terminate_backend("
                f"{backend_pid}), or grant this user the pg_signal_backend role",
            ) from None
        if row is None or not row[0]:
            raise error(
                "state-unlock",
                f"the lock holder's database session (backend pid {backend_pid}) did not end "
                "within 5s",
                hint="try again",
            )


def _url_secrets(url: str) -> set[str]:
    """Password spellings in ``url`` (as written and decoded, userinfo and query)."""
    found: set[str] = set()
    # By pattern first: urlsplit() refuses some malformed URLs whose text still gets echoed.
    for raw in re.findall(r"://[^:/@?#]*:([^@]*)@", url):
        found |= {raw, urllib.parse.unquote(raw)}
    for raw in re.findall(r"[?&]password=([^&#]*)", url):
        found |= {raw, urllib.parse.unquote(raw)}
    with contextlib.suppress(ValueError):
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rpartition("@")[0]
        if ":" in netloc:
            raw = netloc.split(":", 1)[1]
            found |= {raw, urllib.parse.unquote(raw)}
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if key == "password":
                found.add(value)
        for piece in parts.query.split("&"):
            if piece.startswith("password="):
                found.add(piece.partition("=")[2])
    return {s for s in found if s}


def _describe_pg_url(url: str) -> str:
    """The URL without any password (shown in messages)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return f"{url.partition('://')[0]}://***"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    netloc = f"{userinfo}@{hostport}" if at else hostport
    query = "&".join(
        "password=***" if piece.startswith("password=") else piece
        for piece in parts.query.split("&")
    ) if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _parse_url(url: str, base: Path | None) -> _SQLiteBackend | _PostgresBackend:
    """``sqlite:///<path>`` (absolute if ``<path>`` starts with ``/``) or a plain path."""
    text = url.strip()
    hint = (
        "use sqlite:///relative/path, sqlite:////absolute/path or a plain file path "
        f"(default: sqlite:///{STATE_DIR}/{STATE_FILE} in the project directory), "
        "or postgresql://USER@HOST:PORT/DATABASE for a team's shared state"
    )
    if not text:
        raise error("state-url", "the state URL is empty", hint=hint)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        scheme = scheme.lower()
        if scheme in ("postgresql", "postgres"):
            return _PostgresBackend(text)
        if scheme != "sqlite":
            raise error("state-url", f"unknown state URL scheme '{scheme}://'", hint=hint)
        if not rest.startswith("/"):
            raise error(
                "state-url",
                f"a sqlite state URL has no host part: '{url}'",
                hint=hint,
            )
        raw = rest[1:]
        if not raw or raw == ":memory:":
            raise error("state-url", f"'{url}' does not name a database file", hint=hint)
    else:
        raw = text
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base if base is not None else Path.cwd()) / path
    return _SQLiteBackend(path.absolute())


# --------------------------------------------------------------------------- schema

_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS stacks (
        name TEXT PRIMARY KEY,
        serial INTEGER NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS resources (
        stack TEXT NOT NULL,
        address TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        region TEXT NOT NULL,
        physical_id TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        attributes TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (stack, address))""",
    """CREATE TABLE IF NOT EXISTS outputs (
        stack TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (stack, name))""",
    """CREATE TABLE IF NOT EXISTS runs (
        id {autoinc_pk},
        stack TEXT NOT NULL,
        operation TEXT NOT NULL CHECK (operation IN ('apply', 'destroy')),
        holder TEXT NOT NULL,
        started TEXT NOT NULL,
        finished TEXT,
        status TEXT NOT NULL
            CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')))""",
    "CREATE INDEX IF NOT EXISTS runs_by_stack ON runs (stack, status)",
    """CREATE TABLE IF NOT EXISTS journal (
        run_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        stack TEXT NOT NULL,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        phase TEXT NOT NULL CHECK (phase IN ('intent', 'done', 'failed')),
        physical_id TEXT,
        detail TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (run_id, seq))""",
    "CREATE INDEX IF NOT EXISTS journal_by_address ON journal (stack, address, phase)",
    """CREATE TABLE IF NOT EXISTS locks (
        stack TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        acquired TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        id {autoinc_pk},
        at TEXT NOT NULL,
        stack TEXT NOT NULL,
        who TEXT NOT NULL,
        what TEXT NOT NULL)""",
)

_PARAMETERS_TABLE = """CREATE TABLE IF NOT EXISTS parameters (
        stack TEXT NOT NULL,
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (stack, name))"""
# outputs keep the template's order: a row's place among the stack's outputs
_OUTPUTS_POSITION = "ALTER TABLE outputs ADD COLUMN position INTEGER NOT NULL DEFAULT 0"
# the id of the last plan file applied to the stack: re-applying it says so
_APPLIED_PLAN = "ALTER TABLE stacks ADD COLUMN applied_plan TEXT"
# the template file the stack was applied from (NULL: not known)
_TEMPLATE_COLUMN = "ALTER TABLE stacks ADD COLUMN template TEXT"
# the stack lock's fencing token: a per-stack counter bumped by every acquisition, and
# the value the current holder got (0: a lock record written before schema 4)
_LOCK_GENERATION = "ALTER TABLE stacks ADD COLUMN lock_generation INTEGER NOT NULL DEFAULT 0"
_LOCK_ROW_GENERATION = "ALTER TABLE locks ADD COLUMN generation INTEGER NOT NULL DEFAULT 0"
_SCHEMA = (*_SCHEMA, _PARAMETERS_TABLE, _OUTPUTS_POSITION, _APPLIED_PLAN, _TEMPLATE_COLUMN,
           _LOCK_GENERATION, _LOCK_ROW_GENERATION)

# Migration hook: MIGRATIONS[n] holds the statements that take schema version n to
# n + 1.  They run in one write transaction together with the version update.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: digests of the values of `immutable` parameters, to refuse changing them
    1: (_PARAMETERS_TABLE,),
    # 3: outputs.position (rows written before it keep position 0: name order),
    # stacks.applied_plan and stacks.template (the template file each stack was
    # applied from)
    2: (_OUTPUTS_POSITION, _APPLIED_PLAN, _TEMPLATE_COLUMN),
    # 4: the lock's generation (fencing token): stacks.lock_generation, locks.generation
    3: (_LOCK_GENERATION, _LOCK_ROW_GENERATION),
}


# --------------------------------------------------------------------------- helpers


class _Tx:
    """A cursor inside one transaction, with the backend's placeholder style."""

    def __init__(self, cursor: Any, backend: _Backend) -> None:
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


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _lock_info(stack: str, row: tuple[Any, ...]) -> LockInfo:
    """A ``locks`` row (holder, pid, host, acquired, generation) as a LockInfo."""
    return LockInfo(stack, row[0], int(row[1]), row[2], _dt(row[3]), int(row[4]))


def _dump(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateValueError([Diagnostic(
            "state-value", f"{what} cannot be stored: it is not plain JSON data ({exc})",
            hint="the state holds JSON values only: no NaN or infinity (a YAML .nan or "
            ".inf), no binary data; change the value in the template")]) from None


# --------------------------------------------------------------------------- the store


class StateStore:
    """Per-stack resources, outputs, runs, journal, lock and audit trail.

    Open with :meth:`open`; close with :meth:`close` or use as a context manager.
    Safe to share between threads (one connection per thread, see module doc).
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        clock: Clock = _utcnow,
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

    @classmethod
    def open(
        cls,
        url: str,
        *,
        base: Path | None = None,
        clock: Clock = _utcnow,
    ) -> StateStore:
        """Open (creating if needed) the store at ``url``.

        ``url`` is ``sqlite:///<path>`` - ``<path>`` absolute if it starts with
        ``/`` (``sqlite:////abs/state.db``), else relative to ``base`` (default:
        the working directory) - or a plain file path, or
        ``postgresql://user@host:port/db`` (also ``postgres://``; any libpq URL
        parameter).  Any other scheme raises a ``state-url`` diagnostic; an
        unreachable PostgreSQL server or refused login a ``state-connect`` one.
        """
        backend = _parse_url(url, base)
        if isinstance(backend, _SQLiteBackend):
            try:
                backend.prepare()
            except OSError as exc:
                raise error(
                    "state-open",
                    f"cannot create the state database {backend.path}: {exc.strerror or exc}",
                    hint="check the directory's permissions or choose another place with --state",
                ) from exc
        store = cls(backend, clock=clock)
        try:
            store._init_schema()
        except DiagnosticError as exc:
            store.close()
            if exc.diagnostics[0].code == "state-corrupt":  # not a (readable) database
                raise error(
                    "state-open",
                    f"cannot open the state database {backend.description}: "
                    f"{exc.diagnostics[0].message.rpartition(': ')[2]}",
                    hint="is it a cloudtmpl state file? State is only a cache: moving a broken "
                    "file aside is safe, the next plan rediscovers the stack from the cloud",
                ) from None
            raise
        except Exception as exc:
            store.close()
            if isinstance(backend, _PostgresBackend) and isinstance(exc, backend._pg.Error):
                raise error(
                    "state-open",
                    f"cannot use the state database {backend.description}: "
                    f"{backend.redact(str(exc).strip())}",
                    hint="the user needs to create tables in that database (or they must "
                    "exist); is it a cloudtmpl state database?",
                ) from None
            raise
        return store

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

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
    def _write(self, key: str | None = None, *, fenced: bool = True) -> Iterator[_Tx]:
        """One write transaction; writers of the same ``key`` (a stack) queue on each other.

        SQLite serializes every writer (``BEGIN IMMEDIATE``); PostgreSQL only
        those with the same key (a transaction-level advisory lock).  A write of a
        stack is ``fenced`` (:meth:`_fence`) unless it is one of the lock's own.
        """
        conn = self._connection()
        with self._write_mutex:
            try:
                self._backend.begin_write(conn)
                tx = _Tx(conn.cursor(), self._backend)
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
    def _read(self) -> Iterator[_Tx]:
        """One read transaction (a consistent snapshot across its statements)."""
        conn = self._connection()
        try:
            self._backend.begin_read(conn)
        except Exception as exc:
            self._rollback(conn)
            self._raise_for(exc)
            raise
        try:
            yield _Tx(conn.cursor(), self._backend)
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

    def _fence(self, tx: _Tx, stack: str) -> None:
        """The fencing check of every write of ``stack``, inside its write transaction.

        A store that holds the stack's lock writes only while the lock record
        still carries the generation it got (else :class:`LockLost`); a store that
        does not hold it writes only while nobody does (else :class:`StackLocked`).
        """
        row = tx.one(f"SELECT {self._LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
        held = self._held.get(stack)
        if held is None:
            if row is not None:
                raise StackLocked(_lock_info(stack, row))
            return
        if row is None:
            raise LockLost(stack, "its lock record was removed (a forced unlock)")
        if int(row[4]) != held[1]:
            raise LockLost(stack, f"{row[0]} took it over")

    def _init_schema(self) -> None:
        # One key for all schema work: two processes creating or migrating at once queue.
        with self._write(_PG_SCHEMA_KEY, fenced=False) as tx:
            tx.run("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = tx.one("SELECT value FROM meta WHERE key = 'schema_version'")
            if row is None:
                for statement in _SCHEMA:
                    tx.run(statement.format(autoinc_pk=self._backend.autoinc_pk))
                tx.run(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                return
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise error(
                    "state-version",
                    f"the state database {self._backend.description} has schema version "
                    f"{version}; this cloudtmpl understands up to {SCHEMA_VERSION}",
                    hint="upgrade cloudtmpl",
                )
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    tx.run(statement.format(autoinc_pk=self._backend.autoinc_pk))
                version += 1
                tx.run(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                )

    def schema_version(self) -> int:
        with self._read() as tx:
            row = tx.one("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0]) if row else 0

    # ------------------------------------------------------------ small helpers

    def _now(self) -> str:
        return _ts(self._clock())

    def _ensure_stack(self, tx: _Tx, stack: str, now: str) -> None:
        tx.run(
            "INSERT INTO stacks (name, serial, created, updated) VALUES (?, 0, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (stack, now, now),
        )

    def _bump(self, tx: _Tx, stack: str, now: str) -> None:
        self._ensure_stack(tx, stack, now)
        tx.run("UPDATE stacks SET serial = serial + 1, updated = ? WHERE name = ?", (now, stack))

    def _audit(self, tx: _Tx, stack: str, who: str, what: str, now: str) -> None:
        tx.run(
            "INSERT INTO audit (at, stack, who, what) VALUES (?, ?, ?, ?)", (now, stack, who, what)
        )

    # ------------------------------------------------------------ stacks, resources, outputs

    def stacks(self) -> list[str]:
        """Stacks that have resources or outputs (a forgotten stack is not listed)."""
        with self._read() as tx:
            rows = tx.all(
                "SELECT name FROM stacks s WHERE "
                "EXISTS (SELECT 1 FROM resources r WHERE r.stack = s.name) OR "
                "EXISTS (SELECT 1 FROM outputs o WHERE o.stack = s.name) ORDER BY name"
            )
        return [r[0] for r in rows]

    def stack_summaries(self) -> list[StackSummary]:
        """Every stack with resources, outputs or a lock: serial, counts, lock holder."""
        with self._read() as tx:
            rows = tx.all(
                "SELECT s.name, s.serial, s.updated, "
                "(SELECT COUNT(*) FROM resources r WHERE r.stack = s.name), "
                "(SELECT COUNT(*) FROM outputs o WHERE o.stack = s.name) "
                "FROM stacks s ORDER BY s.name"
            )
            locks = tx.all(f"SELECT stack, {self._LOCK_COLUMNS} FROM locks")
        held = {r[0]: _lock_info(r[0], r[1:]) for r in locks}
        out: dict[str, StackSummary] = {}
        for name, serial, updated, n_res, n_out in rows:
            if n_res or n_out or name in held:
                out[name] = StackSummary(
                    name, int(serial), int(n_res), int(n_out), _dt(updated), held.get(name)
                )
        for name, info in held.items():
            if name not in out:
                out[name] = StackSummary(name, 0, 0, 0, None, info)
        return [out[name] for name in sorted(out)]

    def serial(self, stack: str) -> int:
        """The stack's change counter: 0 for a new stack, +1 per resource write."""
        with self._read() as tx:
            row = tx.one("SELECT serial FROM stacks WHERE name = ?", (stack,))
        return int(row[0]) if row else 0

    def applied_plan(self, stack: str) -> str | None:
        """The id of the last plan file applied to the stack (see ``set_applied_plan``)."""
        with self._read() as tx:
            row = tx.one("SELECT applied_plan FROM stacks WHERE name = ?", (stack,))
        return row[0] if row else None

    def set_applied_plan(self, stack: str, plan_id: str) -> None:
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("UPDATE stacks SET applied_plan = ? WHERE name = ?", (plan_id, stack))

    def resources(self, stack: str) -> dict[str, ResourceRecord]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT address, kind, target, region, physical_id, name, spec, spec_hash, "
                "attributes FROM resources WHERE stack = ? ORDER BY address",
                (stack,),
            )
        return {
            r[0]: ResourceRecord(
                address=r[0],
                kind=r[1],
                target=r[2],
                region=r[3],
                physical_id=r[4],
                name=r[5],
                spec=json.loads(r[6]),
                spec_hash=r[7],
                attributes=json.loads(r[8]),
            )
            for r in rows
        }

    def put_resource(self, stack: str, rec: ResourceRecord) -> None:
        """Insert or replace ``rec`` and bump the stack's serial."""
        spec = _dump(dict(rec.spec), f"the spec of {rec.address}")
        attributes = _dump(dict(rec.attributes), f"the attributes of {rec.address}")
        now = self._now()
        with self._write(stack) as tx:
            tx.run(
                "INSERT INTO resources (stack, address, kind, target, region, physical_id, "
                "name, spec, spec_hash, attributes, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (stack, address) DO UPDATE SET kind = excluded.kind, "
                "target = excluded.target, region = excluded.region, "
                "physical_id = excluded.physical_id, name = excluded.name, "
                "spec = excluded.spec, spec_hash = excluded.spec_hash, "
                "attributes = excluded.attributes, updated = excluded.updated",
                (stack, rec.address, rec.kind, rec.target, rec.region, rec.physical_id,
                 rec.name, spec, rec.spec_hash, attributes, now),
            )
            self._bump(tx, stack, now)

    def delete_resource(self, stack: str, address: str) -> bool:
        """Remove a resource; bumps the serial.  False if there was nothing to remove."""
        now = self._now()
        with self._write(stack) as tx:
            n = tx.run("DELETE FROM resources WHERE stack = ? AND address = ?", (stack, address))
            if n:
                self._bump(tx, stack, now)
        return n > 0

    def outputs(self, stack: str) -> dict[str, Any]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT name, value FROM outputs WHERE stack = ? ORDER BY position, name", (stack,)
            )
        return {name: json.loads(value) for name, value in rows}

    def set_outputs(self, stack: str, outputs: Mapping[str, Any]) -> None:
        """Replace all of the stack's outputs (values must be plain JSON data), keeping
        their order (the template's)."""
        dumped = [(str(k), _dump(v, f"output '{k}'")) for k, v in outputs.items()]
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("DELETE FROM outputs WHERE stack = ?", (stack,))
            for position, (name, value) in enumerate(dumped):
                tx.run(
                    "INSERT INTO outputs (stack, name, value, position) VALUES (?, ?, ?, ?)",
                    (stack, name, value, position),
                )
            tx.run("UPDATE stacks SET updated = ? WHERE name = ?", (now, stack))

    def parameter_digests(self, stack: str) -> dict[str, str]:
        """Digests of the values ``immutable`` parameters had at the last apply."""
        with self._read() as tx:
            rows = tx.all("SELECT name, digest FROM parameters WHERE stack = ?", (stack,))
        return {name: digest for name, digest in rows}

    def set_parameter_digests(self, stack: str, digests: Mapping[str, str]) -> None:
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("DELETE FROM parameters WHERE stack = ?", (stack,))
            for name, digest in sorted(digests.items()):
                tx.run("INSERT INTO parameters (stack, name, digest) VALUES (?, ?, ?)",
                       (stack, name, digest))

    def template(self, stack: str) -> str | None:
        """The template file the stack was last applied from (relative to the project
        directory, POSIX form); None if not known (a new stack, or written before
        schema 3)."""
        with self._read() as tx:
            row = tx.one("SELECT template FROM stacks WHERE name = ?", (stack,))
        return None if row is None or row[0] is None else str(row[0])

    def set_template(self, stack: str, template: str) -> None:
        """Record the template file the stack is applied from (does not bump the serial)."""
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("UPDATE stacks SET template = ?, updated = ? WHERE name = ?",
                   (template, now, stack))

    def forget_stack(self, stack: str, *, who: str = "cloudtmpl") -> None:
        """Drop the stack's resources, outputs and template (after a destroy).

        Runs, journal and audit are kept; the serial keeps counting (it is bumped),
        so a plan made before the destroy can never look current afterwards.
        """
        now = self._now()
        with self._write(stack) as tx:
            n = tx.run("DELETE FROM resources WHERE stack = ?", (stack,))
            tx.run("DELETE FROM outputs WHERE stack = ?", (stack,))
            tx.run("DELETE FROM parameters WHERE stack = ?", (stack,))
            self._bump(tx, stack, now)
            tx.run("UPDATE stacks SET template = NULL WHERE name = ?", (stack,))
            self._audit(tx, stack, who, f"forgot stack ({n} resource records removed)", now)

    # ------------------------------------------------------------ lock

    _LOCK_COLUMNS = "holder, pid, host, acquired, generation"

    def lock_info(self, stack: str) -> LockInfo | None:
        with self._read() as tx:
            row = tx.one(f"SELECT {self._LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
        return None if row is None else _lock_info(stack, row)

    def _is_stale(self, info: LockInfo) -> bool:
        return info.host == self._host and not pid_alive(info.pid)

    def acquire_lock(self, stack: str, holder: str) -> LockInfo:
        """Take the stack's lock for ``holder`` (this process), or raise :class:`StackLocked`.

        Fails at once - no waiting - if a live process holds it (this one
        included: the lock is not re-entrant).  A stale lock - one whose held
        lock is free (SQLite: nobody holds the lock file, the process that did
        ended; PostgreSQL: the holder's database session ended), on any host - is
        taken over and an audit line records it.  Every acquisition gets the
        stack's next lock generation, the fencing token of every write that
        follows.  Runs of the stack still marked ``running`` were necessarily
        left by a dead or fenced-off process, so they are marked ``interrupted``.
        """
        now = self._now()
        session = self._backend.session_lock(stack)
        try:
            with self._write(stack, fenced=False) as tx:
                free = session.try_acquire()
                self._ensure_stack(tx, stack, now)
                bumped = tx.one(
                    "UPDATE stacks SET lock_generation = lock_generation + 1 WHERE name = ? "
                    "RETURNING lock_generation",
                    (stack,),
                )
                assert bumped is not None
                generation = int(bumped[0])
                # Three tries only matter on backends where a concurrent release can slip in
                # between our statements; under SQLite's BEGIN IMMEDIATE the first one decides.
                for _ in range(3):
                    claimed = tx.run(
                        "INSERT INTO locks (stack, holder, pid, host, acquired, generation) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stack) DO NOTHING",
                        (stack, holder, self._pid, self._host, now, generation),
                    )
                    if claimed:
                        break
                    row = tx.one(
                        f"SELECT {self._LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,)
                    )
                    if row is None:
                        continue
                    current = _lock_info(stack, row)
                    if not free and isinstance(self._backend, _PostgresBackend) \
                            and self._is_stale(current):
                        free = self._await_session_end(session)
                    if current.generation == 0 and isinstance(self._backend, _SQLiteBackend):
                        # written before schema 4 by a cloudtmpl that held no lock file
                        stale, why = free and self._is_stale(current), "process no longer running"
                    else:
                        stale, why = free, self._backend.stale_reason
                    if not stale:
                        raise StackLocked(current)
                    # Compare-and-swap, so the take-over is race-free on any backend.
                    took = tx.run(
                        "UPDATE locks SET holder = ?, pid = ?, host = ?, acquired = ?, "
                        "generation = ? WHERE stack = ? AND generation = ? AND holder = ? "
                        "AND pid = ? AND host = ? AND acquired = ?",
                        (holder, self._pid, self._host, now, generation, stack,
                         current.generation, current.holder, current.pid, current.host, row[3]),
                    )
                    if took != 1:
                        raise StackLocked(current)
                    self._audit(
                        tx, stack, holder, f"took over stale lock of {current.describe()}: {why}",
                        now,
                    )
                    break
                else:
                    raise StateError(f"could not claim the lock of stack '{stack}'")
                if not free:
                    # No record, yet someone holds the held lock (its record was removed).
                    orphan = self._backend.lock_session_holder(tx, stack)
                    if orphan is not None:
                        raise StackLocked(orphan)
                    if not session.try_acquire():  # it just ended
                        raise StateError(f"could not claim the lock of stack '{stack}'")
                tx.run(
                    "UPDATE runs SET status = 'interrupted', finished = ? "
                    "WHERE stack = ? AND status = 'running'",
                    (now, stack),
                )
        except BaseException:
            session.close()
            raise
        mine = LockInfo(stack, holder, self._pid, self._host, _dt(now), generation)
        if isinstance(session, FileLock):
            session.note(mine)
        with self._conns_guard:
            old = self._lock_sessions.pop(stack, None)
            self._lock_sessions[stack] = session
            self._held[stack] = (holder, generation)
        if old is not None:  # its lock was forced away: the session is dead or unlocked
            old.close()
        return mine

    @staticmethod
    def _await_session_end(session: HeldLock) -> bool:
        """The holder process is dead: give the server a moment to end its session."""
        deadline = time.monotonic() + DEAD_SESSION_GRACE_S
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if session.try_acquire():
                return True
        return False

    def check_lock(self, stack: str) -> None:
        """Raise :class:`LockLost` unless this store still holds the stack's lock: its
        held lock is alive (PostgreSQL: the lock session did not end) and the record
        carries the generation it got.  The executor calls this before each step."""
        held = self._held.get(stack)
        if held is None:
            raise StateError(f"check_lock: this store does not hold the lock of stack '{stack}'")
        session = self._lock_sessions.get(stack)
        if session is None or not session.alive():
            raise LockLost(stack, self._backend.stale_reason)
        with self._read() as tx:
            row = tx.one(f"SELECT {self._LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
        if row is None:
            raise LockLost(stack, "its lock record was removed (a forced unlock)")
        if int(row[4]) != held[1]:
            raise LockLost(stack, f"{row[0]} took it over")

    def _drop_lock(self, stack: str) -> None:
        """Forget this store's hold of the stack's lock and let go of its held lock."""
        with self._conns_guard:
            session = self._lock_sessions.pop(stack, None)
            self._held.pop(stack, None)
        if session is not None:
            session.release()

    def release_lock(self, stack: str, holder: str) -> bool:
        """Release the lock if ``holder`` in this store holds it; False otherwise.

        The held lock is let go of whatever happens; should the record's removal
        fail (a full disk), the record stays behind, stale, and the next run takes
        it over.  False also when the lock was lost (taken over or force-removed).
        """
        held = self._held.get(stack)
        if held is None or held[0] != holder:
            return False
        try:
            with self._write(stack, fenced=False) as tx:
                # The generation: never the record of a run that took the lock over since.
                n = tx.run(
                    "DELETE FROM locks WHERE stack = ? AND generation = ?", (stack, held[1])
                )
                # Let go before the removal commits (we hold the stack's write lock):
                # nobody ever sees the held lock taken without its record.  (On SQLite
                # that also frees the lock file's reserve, room for this very commit.)
                self._drop_lock(stack)
        finally:
            self._drop_lock(stack)
        return n > 0

    @contextmanager
    def lock(self, stack: str, holder: str) -> Iterator[LockInfo]:
        """``with store.lock(stack, holder) as info:`` - acquire, then always release.

        When the body fails, a failure to remove the record (see
        :meth:`release_lock`) does not hide the body's exception.
        """
        info = self.acquire_lock(stack, holder)
        try:
            yield info
        except BaseException:
            with contextlib.suppress(DiagnosticError):
                self.release_lock(stack, holder)
            raise
        self.release_lock(stack, holder)

    def force_unlock(self, stack: str, who: str) -> LockInfo | None:
        """Remove the lock whoever holds it; audit ``who`` did it.  Returns the removed lock.

        The holder is fenced off at once: its writes fail, and it stops before
        its next step.  On PostgreSQL the holder's lock session is ended too
        (``pg_terminate_backend``; a ``state-unlock`` diagnostic if this user may
        not do that); on SQLite its lock file stays locked until it stops.
        """
        now = self._now()
        with self._write(stack, fenced=False) as tx:
            row = tx.one(f"SELECT {self._LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
            own = self._lock_sessions.get(stack)
            session_holder = (self._backend.lock_session_holder(tx, stack)
                              if own is None or not own.alive() else None)
            if row is None and session_holder is None and own is None:
                return None
            if row is not None:
                info = _lock_info(stack, row)
            elif session_holder is not None:
                info = session_holder
            else:
                holder, generation = self._held[stack]
                info = LockInfo(stack, holder, self._pid, self._host, _dt(now), generation)
            tx.run("DELETE FROM locks WHERE stack = ?", (stack,))
            if own is not None:
                self._drop_lock(stack)
            if session_holder is not None:
                self._backend.end_session(tx, session_holder.pid)
            self._audit(tx, stack, who, f"force-unlocked lock of {info.describe()}", now)
        return info

    # ------------------------------------------------------------ runs and journal

    def begin_run(self, stack: str, operation: Operation | str, holder: str) -> int:
        """Start a run; ``holder`` in this process must hold the stack's lock."""
        if operation not in _OPERATIONS:
            raise StateError(f"unknown operation {operation!r}; expected one of {_OPERATIONS}")
        now = self._now()
        held = self._held.get(stack)
        if held is None or held[0] != holder:
            raise StateError(
                f"begin_run: {holder!r} does not hold the lock of stack '{stack}' "
                "(call acquire_lock or use lock() first)"
            )
        with self._write(stack) as tx:  # fenced: the lock is still ours
            self._ensure_stack(tx, stack, now)
            row = tx.one(
                "INSERT INTO runs (stack, operation, holder, started, finished, status) "
                "VALUES (?, ?, ?, ?, NULL, 'running') RETURNING id",
                (stack, operation, holder, now),
            )
        assert row is not None
        return int(row[0])

    def end_run(self, run_id: int, status: RunStatus | str) -> None:
        if status not in _END_STATUSES:
            raise StateError(f"unknown run status {status!r}; expected one of {_END_STATUSES}")
        now = self._now()
        with self._read() as tx:
            row = tx.one("SELECT stack FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise StateError(f"no run with id {run_id}")
        with self._write(row[0]) as tx:
            tx.run("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, now, run_id))

    def runs(self, stack: str) -> list[RunInfo]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT id, stack, operation, holder, started, finished, status FROM runs "
                "WHERE stack = ? ORDER BY id",
                (stack,),
            )
        return [
            RunInfo(int(r[0]), r[1], r[2], r[3], _dt(r[4]), _dt(r[5]) if r[5] else None, r[6])
            for r in rows
        ]

    def journal(
        self,
        run_id: int,
        stack: str,
        address: str,
        action: str,
        phase: Phase | str,
        physical_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> JournalEntry:
        """Record one step; committed (durable) when this returns.

        Write ``intent`` before calling the cloud and ``done``/``failed`` after.
        ``seq`` is assigned by the store, increasing within the run.
        """
        if phase not in _PHASES:
            raise StateError(f"unknown journal phase {phase!r}; expected one of {_PHASES}")
        detail_text = (
            None if detail is None else _dump(dict(detail), f"journal detail of {address}")
        )
        now = self._now()
        with self._write(stack) as tx:
            run = tx.one("SELECT stack FROM runs WHERE id = ?", (run_id,))
            if run is None:
                raise StateError(f"no run with id {run_id}")
            if run[0] != stack:
                raise StateError(f"run {run_id} belongs to stack '{run[0]}', not '{stack}'")
            seq_row = tx.one(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE run_id = ?", (run_id,)
            )
            assert seq_row is not None
            seq = int(seq_row[0])
            tx.run(
                "INSERT INTO journal (run_id, seq, stack, address, action, phase, physical_id, "
                "detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, stack, address, action, phase, physical_id, detail_text, now),
            )
        return JournalEntry(
            run_id, seq, address, action, cast(Phase, phase), physical_id,
            None if detail_text is None else json.loads(detail_text), _dt(now),
        )

    _JOURNAL_COLUMNS = (
        "j.run_id, j.seq, j.address, j.action, j.phase, j.physical_id, j.detail, j.at"
    )

    @staticmethod
    def _entry(r: tuple[Any, ...]) -> JournalEntry:
        return JournalEntry(
            int(r[0]), int(r[1]), r[2], r[3], r[4], r[5],
            None if r[6] is None else json.loads(r[6]), _dt(r[7]),
        )

    def journal_entries(self, run_id: int) -> list[JournalEntry]:
        with self._read() as tx:
            rows = tx.all(
                f"SELECT {self._JOURNAL_COLUMNS} FROM journal j WHERE j.run_id = ? ORDER BY j.seq",
                (run_id,),
            )
        return [self._entry(r) for r in rows]

    def open_intents(self, stack: str, *, before_run: int | None = None) -> list[JournalEntry]:
        """Steps that were started but never finished: what a killed run may have half-done.

        An ``intent`` is open unless (a) its own run later recorded ``done`` or
        ``failed`` for the same address and action, or (b) a later run recorded
        ``done`` for the same address (any action - e.g. ``adopt`` after finding
        the resource, ``lookup`` after finding nothing, or a successful
        create/update/delete; a later *failed* step proves nothing and leaves
        the intent open).  With
        ``before_run``, only runs with a smaller id are considered (so a run in
        progress can ask about its predecessors).
        """
        sql = (
            f"SELECT {self._JOURNAL_COLUMNS} FROM journal j "
            "WHERE j.stack = ? AND j.phase = 'intent' "
            "AND NOT EXISTS (SELECT 1 FROM journal d WHERE d.run_id = j.run_id "
            "  AND d.address = j.address AND d.action = j.action AND d.seq > j.seq "
            "  AND d.phase IN ('done', 'failed')) "
            "AND NOT EXISTS (SELECT 1 FROM journal l WHERE l.stack = j.stack "
            "  AND l.address = j.address AND l.run_id > j.run_id AND l.phase = 'done')"
        )
        params: list[Any] = [stack]
        if before_run is not None:
            sql += " AND j.run_id < ?"
            params.append(before_run)
        sql += " ORDER BY j.run_id, j.seq"
        with self._read() as tx:
            rows = tx.all(sql, params)
        return [self._entry(r) for r in rows]

    # ------------------------------------------------------------ audit

    def audit_log(self, stack: str | None = None) -> list[AuditEntry]:
        """Audit lines, oldest first (all stacks, or one)."""
        sql = "SELECT at, stack, who, what FROM audit"
        params: tuple[Any, ...] = ()
        if stack is not None:
            sql += " WHERE stack = ?"
            params = (stack,)
        with self._read() as tx:
            rows = tx.all(sql + " ORDER BY id", params)
        return [AuditEntry(_dt(r[0]), r[1], r[2], r[3]) for r in rows]
