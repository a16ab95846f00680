"""The stack lock's fencing and its kernel-held lock file, against real SQLite files.

The tests that take the ``url`` fixture are backend-neutral:
tests/integration/test_state_postgres.py runs them again on SQLite and on a real
PostgreSQL server.  The end-to-end cases (a holder's PostgreSQL session
terminated mid-apply, a holder killed inside a PID namespace) are in
tests/integration/test_fencing.py.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import stat
from pathlib import Path

import pytest

from cloudtmpl.state import (
    SCHEMA_VERSION,
    LockLost,
    StackLocked,
    StateStore,
)
from cloudtmpl.state.sqlite import lock_file
from tests.unit.statehelpers import HOLD_LOCK, record, spawn_python, writes


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def url(db: Path) -> str:
    """A fresh, empty store's URL (tests/integration/test_state_postgres.py overrides it)."""
    return f"sqlite:///{db}"


TABLES = ("meta", "stacks", "resources", "outputs", "parameters", "runs", "journal", "locks",
          "audit")


def everything(store: StateStore) -> dict[str, list[str]]:
    """Every row of every table: what a refused write must leave as it was."""
    with store._read() as tx:
        return {t: sorted(repr(r) for r in tx.all(f"SELECT * FROM {t}")) for t in TABLES}


# --------------------------------------------------------------------------- both backends


def test_every_acquisition_gets_the_next_generation(url: str) -> None:
    with StateStore.open(url) as s:
        generations = []
        for who in ("a", "b", "c"):
            with s.lock("demo", who) as info:
                assert s.lock_info("demo") == info
                generations.append(info.generation)
            s.forget_stack("demo")  # the counter survives a forgotten stack
        assert generations == [1, 2, 3]
        assert s.acquire_lock("other", "x").generation == 1  # per stack


def test_a_holder_whose_lock_was_taken_over_can_write_nothing(url: str) -> None:
    """Its held lock ends (a terminated session, a lost file) without it noticing: the
    next run takes over, and every write the old holder still tries is refused."""
    with StateStore.open(url) as first, StateStore.open(url) as second:
        first.acquire_lock("demo", "first")
        run = first.begin_run("demo", "apply", "first")
        first.put_resource("demo", record("web"))
        first.check_lock("demo")  # still its own
        first._lock_sessions["demo"].close()  # the held lock ends; the store is not told
        info = second.acquire_lock("demo", "second")
        assert info.generation == 2
        assert "took over stale lock of first" in second.audit_log("demo")[-1].what
        assert second.runs("demo")[0].status == "interrupted"
        before = everything(second)
        for name, write in writes(first, run).items():
            with pytest.raises(LockLost, match="second took it over"):
                write()
            assert everything(second) == before, name
        with pytest.raises(LockLost):
            first.check_lock("demo")
        assert first.release_lock("demo", "first") is False  # nothing of its own to remove
        assert second.lock_info("demo") == info  # the new holder's lock is untouched
        run2 = second.begin_run("demo", "apply", "second")
        second.put_resource("demo", record("late"))
        second.end_run(run2, "succeeded")
        second.check_lock("demo")


def test_a_force_unlocked_holder_can_write_nothing(url: str) -> None:
    with StateStore.open(url) as first, StateStore.open(url) as ops:
        first.acquire_lock("demo", "first")
        run = first.begin_run("demo", "apply", "first")
        first.put_resource("demo", record("web"))
        removed = ops.force_unlock("demo", "ops")
        assert removed is not None and removed.holder == "first" and removed.generation == 1
        before = everything(ops)
        for name, write in writes(first, run).items():
            with pytest.raises(LockLost, match="removed"):
                write()
            assert everything(ops) == before, name
        with pytest.raises(LockLost):
            first.check_lock("demo")
        assert first.release_lock("demo", "first") is False
        assert ops.acquire_lock("demo", "second").generation == 2


def test_a_store_without_the_lock_cannot_write_a_locked_stack(url: str) -> None:
    with StateStore.open(url) as holder, StateStore.open(url) as other:
        holder.acquire_lock("demo", "holder")
        with pytest.raises(StackLocked, match="holder"):
            other.put_resource("demo", record())
        with pytest.raises(StackLocked):
            other.set_outputs("demo", {"x": 1})
        other.put_resource("elsewhere", record())  # other stacks stay writable
        assert other.resources("demo") == {}


def test_a_schema_3_database_is_migrated_and_its_old_lock_judged_by_pid(url: str) -> None:
    with StateStore.open(url) as s, s._write() as tx:
        tx.run("DROP TABLE locks")
        tx.run("CREATE TABLE locks (stack TEXT PRIMARY KEY, holder TEXT NOT NULL, "
               "pid INTEGER NOT NULL, host TEXT NOT NULL, acquired TEXT NOT NULL)")
        tx.run("ALTER TABLE stacks DROP COLUMN lock_generation")
        # a lock left by a cloudtmpl of schema 3 that was killed (no such pid)
        tx.run("INSERT INTO locks VALUES ('demo', 'old-apply', 999999999, ?, "
               "'2024-01-01T00:00:00+00:00')", (socket.gethostname(),))
        tx.run("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with StateStore.open(url) as s:
        assert s.schema_version() == SCHEMA_VERSION == 6  # 3 -> 4 -> 5 -> 6 (scaling_groups)
        old = s.lock_info("demo")
        assert old is not None and old.generation == 0
        info = s.acquire_lock("demo", "new-apply")
        assert info.generation == 1
        assert "old-apply" in s.audit_log("demo")[-1].what


# --------------------------------------------------------------------------- SQLite only


def _flock_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_the_lock_is_a_private_file_beside_the_database_held_while_locked(db: Path) -> None:
    path = lock_file(db, "demo")
    assert path == db.parent / "state.db.locks" / "demo.lock"
    assert lock_file(db, "a/b").name.startswith("~")  # never a path of its own
    with StateStore.open(str(db)) as s:
        with s.lock("demo", "me"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            assert not _flock_free(path)
            assert "me" in path.read_text()  # the holder is noted for messages
        assert _flock_free(path)
        s.acquire_lock("demo", "forgetful")
    assert _flock_free(path)  # closing the store lets go of it


def test_a_record_whose_lock_file_is_free_is_stale_whatever_it_names(db: Path) -> None:
    """A holder killed in a PID namespace recorded pid 1 (alive on the host); one on a
    machine sharing the directory names another host: neither holds the lock file."""
    with StateStore.open(str(db)) as s:
        s.acquire_lock("demo", "seed")
        for pid, host in ((1, socket.gethostname()), (4242, "container-7f3a")):
            with s._write("demo") as tx:
                tx.run("UPDATE locks SET holder = 'gone', pid = ?, host = ?", (pid, host))
            s._lock_sessions["demo"].close()  # like the end of the process that held it
            s._held.pop("demo")
            info = s.acquire_lock("demo", "next")
            assert info.holder == "next"
            line = s.audit_log("demo")[-1].what
            assert f"gone (pid {pid} on host {host})" in line
            assert "its process ended (the lock file is free)" in line


def test_a_killed_holder_frees_the_lock_file_at_once(db: Path) -> None:
    StateStore.open(str(db)).close()
    holder = spawn_python(HOLD_LOCK.format(url=str(db), holder="doomed"))
    assert holder.stdout is not None and holder.stdout.readline().strip() == "won"
    path = lock_file(db, "demo")
    assert not _flock_free(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert _flock_free(path)


def test_a_force_unlocked_holder_still_running_is_named_and_blocks(db: Path) -> None:
    StateStore.open(str(db)).close()
    holder = spawn_python(HOLD_LOCK.format(url=str(db), holder="ci-runner-3"))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "won"
        with StateStore.open(str(db)) as s:
            assert s.force_unlock("demo", "ops") is not None
            assert s.lock_info("demo") is None
            with pytest.raises(StackLocked) as err:  # it stops before its next step
                s.acquire_lock("demo", "me")
            assert err.value.info.holder.startswith("ci-runner-3")
            assert err.value.info.pid == holder.pid
            assert "force-removed" in str(err.value)
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
            assert s.acquire_lock("demo", "me").holder == "me"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
