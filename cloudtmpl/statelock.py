"""The stack lock's parts: who holds it, the lock under it that dies with its holder, fencing.

One apply/destroy per stack runs at a time.  The lock has two halves:

* A **held lock** that ends by itself when its holder ends, however it ends
  (exit, ``kill -9``, a crash, inside a container or PID namespace):

  - SQLite: an exclusive ``flock`` on a lock file beside the database
    (``state.db.locks/<stack>.lock``, mode 0600), held on an open file for as
    long as the lock is held (:class:`FileLock`).  The kernel drops it when the
    file is closed or the process ends.  It is as reliable as SQLite's own
    locking, which the same file system must provide anyway.
  - PostgreSQL: a session-level advisory lock on a connection of its own
    (:class:`PgSessionLock`); the server drops it when that session ends (the
    holder died, or its session was terminated).

* A **record**, the ``locks`` row: holder (``user@host pid N (command)``), pid,
  host, since when, and the lock's **generation** - the stack's fencing token.
  Every acquisition increments the stack's counter (``stacks.lock_generation``)
  and writes the new value into the row.

A record whose held lock is free is stale - whatever pid or host it names -
and the next acquisition takes it over (with an audit line).  The store checks
the writer's generation against the row inside every write transaction of the
stack, so a holder whose lock was taken over (its PostgreSQL session was
terminated, its record was force-removed) can write nothing more: its writes
raise :class:`LockLost`.  The executor also checks before each step
(:meth:`StateStore.check_lock`) and stops starting new ones.

Records written before schema 4 (generation 0) by an SQLite cloudtmpl that held
no lock file are judged the old way: stale only when the process they name on
this host is gone (:func:`pid_alive`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from cloudtmpl.diagnostics import Diagnostic, error

__all__ = [
    "FileLock",
    "HeldLock",
    "LockInfo",
    "LockLost",
    "PgSessionLock",
    "StackLocked",
    "lock_file",
    "pid_alive",
]


@dataclass(frozen=True)
class LockInfo:
    stack: str
    holder: str
    pid: int
    host: str
    acquired: datetime
    generation: int = 0  # the fencing token (0: a record written before schema 4)

    def describe(self) -> str:
        since = self.acquired.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.holder} (pid {self.pid} on host {self.host}) since {since}"


class StackLocked(Exception):
    """Another live process holds the stack's lock.  ``info`` says who and since when.

    ``str(exc)`` names the holder, its pid and host and since when it holds the
    lock; :meth:`diagnostic` turns it into a ``stack-locked`` diagnostic.
    """

    CODE = "stack-locked"

    def __init__(self, info: LockInfo) -> None:
        self.info = info
        super().__init__(f"stack '{info.stack}' is locked by {info.describe()}")

    def diagnostic(self, hint: str = "") -> Diagnostic:
        return Diagnostic(
            self.CODE,
            str(self),
            hint=hint
            or "wait for that run to finish; if its process is certainly gone (e.g. it ran "
            "on another machine), force-unlock the stack",
        )


class LockLost(Exception):
    """This process no longer holds the stack's lock: another run took it over, or it
    was force-removed.  Nothing more is written for the stack; :meth:`diagnostic`
    gives the ``lock-lost`` diagnostic."""

    CODE = "lock-lost"

    def __init__(self, stack: str, why: str) -> None:
        self.stack = stack
        self.why = why
        super().__init__(f"lost the lock of stack '{stack}': {why}")

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(
            self.CODE,
            f"{self}; stopped: no new step started and nothing more written to the state",
            hint="another run owns the stack now (or the lock was force-removed); steps "
            "already in flight may have finished in the cloud without a state record - the "
            "next plan finds them by their tags. Run `cloudtmpl plan` once the other run "
            "has ended",
        )


class HeldLock(Protocol):
    """The half of the lock that ends by itself when its holder ends."""

    def try_acquire(self) -> bool: ...
    def alive(self) -> bool: ...  # still held (False: the session ended)
    def release(self) -> None: ...  # unlock and close
    def close(self) -> None: ...
    @property
    def backend_pid(self) -> int: ...  # who holds it, as lock_session_holder names it


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (records before schema 4)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True  # cannot tell: assume alive (never steal a live lock)
    return True


# --------------------------------------------------------------------------- SQLite

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


# --------------------------------------------------------------------------- PostgreSQL


class PgSessionLock:
    """A dedicated connection holding one session-level advisory lock."""

    def __init__(self, conn: Any, key: int) -> None:
        self._conn = conn
        self._key = key
        self._held = False

    @property
    def backend_pid(self) -> int:
        return int(self._conn.info.backend_pid)

    def try_acquire(self) -> bool:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s::bigint)", (self._key,)).fetchone()
        self._held = bool(row[0])
        return self._held

    def alive(self) -> bool:
        if self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def release(self) -> None:
        try:
            if self._held and not self._conn.closed:
                # a dead session holds nothing any more: then there is nothing to unlock
                with contextlib.suppress(Exception):
                    self._conn.execute("SELECT pg_advisory_unlock(%s::bigint)", (self._key,))
        finally:
            self._held = False
            self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
