"""SQLite: the default state file, its failures as diagnostics, and the lock file.

The default store is ``<project>/.cloudtmpl/state.db`` (:func:`default_state_url`),
created with mode 0600 in a 0700 directory.  Connections use WAL mode, a busy
timeout and ``synchronous = FULL``; ``BEGIN IMMEDIATE`` is the write primitive,
so every writer, in this process and in others, queues on every other.

The held half of the stack lock is an exclusive ``flock`` on a lock file beside
the database (``state.db.locks/<stack>.lock``, mode 0600), held on an open file
for as long as the lock is held (:class:`FileLock`).  The kernel drops it when
the file is closed or the process ends, however it ends (exit, ``kill -9``, a
crash, inside a container or PID namespace).  It is as reliable as SQLite's own
locking, which the same file system must provide anyway.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cloudtmpl.config import find_project_file
from cloudtmpl.diagnostics import DiagnosticError, error
from cloudtmpl.state.backend import BUSY_TIMEOUT_MS, HeldLock, Tx
from cloudtmpl.state.records import LockInfo

STATE_DIR = ".cloudtmpl"
STATE_FILE = "state.db"


def project_dir(cwd: Path) -> Path:
    """The nearest directory upward from ``cwd`` holding ``cloudtmpl.yaml``, else ``cwd``."""
    start = Path(cwd).absolute()
    found = find_project_file(start)
    return start if found is None else found.parent


def default_state_url(cwd: Path) -> str:
    """``sqlite:///<project_dir>/.cloudtmpl/state.db`` (an absolute path after ``sqlite:///``)."""
    path = project_dir(cwd) / STATE_DIR / STATE_FILE
    return f"sqlite:///{path.as_posix()}"


class SQLiteBackend:
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

    def serialize(self, tx: Tx, key: str) -> None:
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
        return sqlite_failure(exc, self.path) if isinstance(exc, sqlite3.Error) else None

    stale_reason = "its process ended (the lock file is free)"

    def session_lock(self, stack: str) -> HeldLock:
        return FileLock(lock_file(self.path, stack))

    def lock_session_holder(self, tx: Tx, stack: str) -> LockInfo | None:
        return FileLock(lock_file(self.path, stack)).holder(stack)

    def end_session(self, tx: Tx, backend_pid: int) -> None:
        pass  # a process's flock cannot be taken from it: its removed record fences it


# SQLite's primary result codes (the low byte of Python 3.11's ``sqlite_errorcode``; the
# message is matched as well, for Python 3.10)
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_AUTH, _SQLITE_NOTADB = 13, 14, 23, 26


# What an SQLite failure means, by result code or by words of its message (the first
# match wins): (code, result codes, words, message, hint); {path} and {text} are filled in.
_FAILURES: tuple[tuple[str, tuple[int, ...], tuple[str, ...], str, str], ...] = (
    ("state-corrupt", (_SQLITE_CORRUPT, _SQLITE_NOTADB), ("malformed", "not a database"),
     "the state database {path} is damaged: {text}",
     "the state is a cache of what the clouds hold: move the damaged file aside (mv {path} "
     "{path}.damaged - keep it to look into) and run `cloudtmpl plan`; the stack is found "
     "again in the clouds by its tags"),
    ("state-readonly", (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_AUTH, _SQLITE_CANTOPEN),
     ("readonly", "unable to open"),
     "cannot write the state database {path}: {text}",
     "cloudtmpl writes the file, its -wal and -shm files and the lock files beside it: make "
     "them and their directory writable for this user (immutable? lsattr, chattr -i; a "
     "read-only mount?), or choose another place with --state"),
    ("state-full", (_SQLITE_FULL,), ("full",),
     "cannot write the state database {path}: {text}",
     "free space on the file system that holds it (or raise the file size limit, ulimit -f), "
     "then run the command again: steps are journaled, and the next run finds in the clouds "
     "whatever this one left half-done"),
    ("state-io", (_SQLITE_IOERR,), ("i/o",),
     "cannot read or write the state database {path}: {text}",
     "check the disk and the file system that hold it (full, failing, unmounted?), then run "
     "the command again"),
)


def sqlite_failure(exc: sqlite3.Error, path: Path) -> DiagnosticError:
    """A diagnostic for an SQLite failure: a damaged, read-only or full database."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    lowered = text.lower()
    for name, codes, words, message, hint in _FAILURES:
        if primary in codes or any(word in lowered for word in words):
            return error(name, message.format(path=path, text=text),
                         hint=hint.format(path=path))
    return error(
        "state-error", f"the state database {path} failed: {text}",
        hint="run the command again; if it keeps failing, the file may be damaged: "
        "move it aside and run `cloudtmpl plan` (the clouds are the source of truth)",
    )


# --------------------------------------------------------------------------- the lock file

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def lock_file(database: Path, stack: str) -> Path:
    """``<database>.locks/<stack>.lock`` (a digest for names that are no plain file name)."""
    name = stack if _PLAIN_NAME.fullmatch(stack) else \
        "~" + hashlib.sha256(stack.encode()).hexdigest()[:32]
    return database.with_name(database.name + ".locks") / f"{name}.lock"


RESERVE_BYTES = 64 * 1024  # room kept in the lock file for removing the lock record


class FileLock:
    """An exclusive ``flock`` on a lock file, held while the file is open.

    The kernel releases it when the file is closed or the process ends, however
    it ends.  The holder's description is written into the file's first line
    (for the message of a contender that finds the lock held with no record),
    and the file reserves :data:`RESERVE_BYTES` of disk space while the lock is
    held: releasing frees them first, so that the lock record can still be
    removed when the disk filled up during the run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def backend_pid(self) -> int:
        return os.getpid()

    def _open(self) -> int:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                           0o600)
        except OSError as exc:
            readonly = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
            raise error(
                "state-readonly" if readonly else "state-lock",
                f"cannot open the stack's lock file {self.path}: {exc.strerror or exc}",
                hint="the lock file lives beside the state database: make that directory "
                "writable for this user (is it read-only or immutable? lsattr, chattr -i), "
                "or choose another place with --state" if readonly else
                "check the file system holding the state database (is it full?), then run "
                "the command again",
            ) from None

    def try_acquire(self) -> bool:
        if self._fd is None:
            self._fd = self._open()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def note(self, info: LockInfo) -> None:
        """Write who holds the lock into the file (best effort: it only feeds messages)."""
        if self._fd is None:
            return
        text = json.dumps({"holder": info.holder, "pid": info.pid, "host": info.host,
                           "acquired": info.acquired.isoformat()})
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text.encode() + b"\n", 0)
            os.posix_fallocate(self._fd, 0, RESERVE_BYTES)  # no room to spare: no reserve

    def holder(self, stack: str) -> LockInfo | None:
        """Who holds the lock, if another open file holds it (this one must not)."""
        probe = FileLock(self.path)
        try:
            if probe.try_acquire():
                return None
            try:
                with open(self.path, encoding="utf-8", errors="replace") as fh:
                    noted: Any = json.loads(fh.readline() or "{}")
            except (OSError, ValueError):
                noted = {}
        finally:
            probe.close()
        if not isinstance(noted, dict):
            noted = {}
        try:
            since = datetime.fromisoformat(str(noted.get("acquired")))
        except ValueError:
            since = datetime.now(timezone.utc)
        return LockInfo(
            stack,
            f"{noted.get('holder') or 'a process'}, which holds the lock file {self.path} "
            "but has no lock record (it was force-removed: that run stops before its next "
            "step)",
            int(noted.get("pid") or 0), str(noted.get("host") or "?"), since,
        )

    def alive(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # the reserve goes back to the file system
        self.close()  # closing the file drops the flock

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
