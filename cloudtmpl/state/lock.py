"""The stack lock: one apply/destroy per stack at a time, and the fencing token.

The lock has two halves:

* A **held lock** that ends by itself when its holder ends, however it ends
  (exit, ``kill -9``, a crash, inside a container or PID namespace): on SQLite
  an exclusive ``flock`` on a lock file beside the database
  (:class:`cloudtmpl.state.sqlite.FileLock`), on PostgreSQL a session-level
  advisory lock on a connection of its own
  (:class:`cloudtmpl.state.postgres.PgSessionLock`).
* A **record**, the ``locks`` row: holder (``user@host pid N (command)``), pid,
  host, since when, and the lock's **generation** - the stack's fencing token.
  Every acquisition increments the stack's counter (``stacks.lock_generation``)
  and writes the new value into the row.  The row is claimed in a write
  transaction, so two processes cannot both take it.

A second run fails at once with :class:`StackLocked` naming the holder.  A
record whose held lock is free is stale - whatever pid or host it names (in a
PID namespace a holder records pid 1) - and the next acquisition takes it over
(with an audit line).  Taking, releasing and
force-removing the lock all run under the stack's write serialization, so
nobody ever sees the held lock taken without its record.  The store checks the
writer's generation against the row inside every write transaction of the stack
(:meth:`cloudtmpl.state.core.StoreCore._fence`), so a holder whose lock was
taken over (its PostgreSQL session was terminated, its record was
force-removed) can write nothing more: its writes raise :class:`LockLost`.  The
executor also checks before each step (:meth:`StackLocks.check_lock`) and stops
starting new ones.

Records written before schema 4 (generation 0) by an SQLite cloudtmpl that held
no lock file are judged the old way: stale only when the process they name on
this host is gone (:func:`pid_alive`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.state.backend import HeldLock
from cloudtmpl.state.core import StoreCore
from cloudtmpl.state.postgres import PostgresBackend
from cloudtmpl.state.records import (
    LOCK_COLUMNS,
    LockInfo,
    LockLost,
    StackLocked,
    StateError,
    dt,
    lock_from_row,
)
from cloudtmpl.state.sqlite import FileLock, SQLiteBackend

DEAD_SESSION_GRACE_S = 5.0  # PostgreSQL: how long a dead local holder's session may take to end


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


class StackLocks(StoreCore):
    """The store's lock methods (see the module docstring)."""

    def lock_info(self, stack: str) -> LockInfo | None:
        with self._read() as tx:
            row = tx.one(f"SELECT {LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
        return None if row is None else lock_from_row(stack, row)

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
                    row = tx.one(f"SELECT {LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
                    if row is None:
                        continue
                    current = lock_from_row(stack, row)
                    if not free and isinstance(self._backend, PostgresBackend) \
                            and self._is_stale(current):
                        free = self._await_session_end(session)
                    if current.generation == 0 and isinstance(self._backend, SQLiteBackend):
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
        mine = LockInfo(stack, holder, self._pid, self._host, dt(now), generation)
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
            row = tx.one(f"SELECT {LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
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
            row = tx.one(f"SELECT {LOCK_COLUMNS} FROM locks WHERE stack = ?", (stack,))
            own = self._lock_sessions.get(stack)
            session_holder = (self._backend.lock_session_holder(tx, stack)
                              if own is None or not own.alive() else None)
            if row is None and session_holder is None and own is None:
                return None
            if row is not None:
                info = lock_from_row(stack, row)
            elif session_holder is not None:
                info = session_holder
            else:
                holder, generation = self._held[stack]
                info = LockInfo(stack, holder, self._pid, self._host, dt(now), generation)
            tx.run("DELETE FROM locks WHERE stack = ?", (stack,))
            if own is not None:
                self._drop_lock(stack)
            if session_holder is not None:
                self._backend.end_session(tx, session_holder.pid)
            self._audit(tx, stack, who, f"force-unlocked lock of {info.describe()}", now)
        return info
