"""The state store against real SQLite files (tests/unit/test_state.py).

Tests that take the ``url`` or ``store`` fixture are backend-neutral:
tests/integration/test_state_postgres.py runs them again against both SQLite
and a real PostgreSQL server (it overrides those fixtures).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.model import LiveResource, Placement
from cloudtmpl.state import (
    SCHEMA_VERSION,
    ResourceRecord,
    StackLocked,
    StateError,
    StateStore,
    default_state_url,
    project_dir,
)
from tests.unit.statehelpers import HOLD_LOCK, record, spawn_python


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def url(db: Path) -> str:
    """A fresh, empty store's URL."""
    return _url(db)


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with StateStore.open(url) as s:
        yield s


# --------------------------------------------------------------------------- paths and URLs


def test_project_dir_walks_up_to_cloudtmpl_yaml(tmp_path: Path) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert project_dir(deep) == tmp_path
    assert default_state_url(deep) == f"sqlite:///{tmp_path}/.cloudtmpl/state.db"


def test_project_dir_defaults_to_cwd(tmp_path: Path) -> None:
    # tmp_path's ancestors (/tmp, /) hold no cloudtmpl.yaml
    assert project_dir(tmp_path) == tmp_path


def test_default_url_opens_absolute_path_with_private_modes(tmp_path: Path) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("")
    (tmp_path / "sub").mkdir()
    with StateStore.open(default_state_url(tmp_path / "sub")) as s:
        assert s.schema_version() == SCHEMA_VERSION
    db = tmp_path / ".cloudtmpl" / "state.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    for extra in db.parent.iterdir():  # WAL and shm files inherit the database's mode
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_existing_cloudtmpl_dir_is_made_private(tmp_path: Path) -> None:
    (tmp_path / ".cloudtmpl" / "keys").mkdir(parents=True, mode=0o755)
    os.chmod(tmp_path / ".cloudtmpl", 0o755)
    StateStore.open(default_state_url(tmp_path)).close()
    assert stat.S_IMODE((tmp_path / ".cloudtmpl").stat().st_mode) == 0o700


def test_relative_sqlite_url_and_plain_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with StateStore.open("sqlite:///rel/state.db") as s:
        s.set_outputs("x", {"a": 1})
    assert (tmp_path / "rel" / "state.db").is_file()
    with StateStore.open("rel/state.db") as s:
        assert s.outputs("x") == {"a": 1}
    other = tmp_path / "elsewhere"
    with StateStore.open("sqlite:///db.sqlite", base=other) as s:
        assert s.url == f"sqlite:///{other}/db.sqlite"
    assert (other / "db.sqlite").is_file()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://db/state", "file:///tmp/x.db", "sqlite://host/x.db", "sqlite:///", "",
        "postgresql://db.example/state?nosuchparam=1", "postgres://[::1/state",
    ],
)
def test_bad_state_url_is_a_diagnostic(url: str) -> None:
    with pytest.raises(DiagnosticError) as err:
        StateStore.open(url)
    (diag,) = err.value.diagnostics
    assert diag.code == "state-url"
    assert "sqlite:///" in diag.hint or "postgresql://" in diag.hint


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:{pw}@127.0.0.1:{port}/state",
        "postgres://alice@127.0.0.1:{port}/state?password={pw}",
        "postgresql://alice:{pw}@[::1/state",  # malformed: the parser echoes the URL
    ],
)
def test_postgres_connect_failure_never_shows_the_password(url: str) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "Sup3r-s3cret-pw"
    with pytest.raises(DiagnosticError) as err:
        StateStore.open(url.format(pw=secret, port=port))
    (diag,) = err.value.diagnostics
    assert diag.code in ("state-connect", "state-url")
    assert secret not in diag.message and secret not in diag.hint
    assert secret not in str(err.value) and secret not in repr(err.value.__cause__)
    if diag.code == "state-connect":
        assert f"127.0.0.1:{port}" in diag.message and "alice" in diag.message


def test_unknown_scheme_names_it() -> None:
    with pytest.raises(DiagnosticError, match=r"unknown state URL scheme 'mysql://'"):
        StateStore.open("mysql://db/state")


def test_not_a_database_is_a_diagnostic(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DiagnosticError) as err:
        StateStore.open(str(bad))
    assert err.value.diagnostics[0].code == "state-open"


def test_existing_database_is_reopened_and_newer_schema_refused(url: str) -> None:
    with StateStore.open(url) as s:
        s.put_resource("demo", record())
    with StateStore.open(url) as s:
        assert list(s.resources("demo")) == ["web"]
        assert s.schema_version() == SCHEMA_VERSION
        with s._write() as tx:  # simulate a database written by a future cloudtmpl
            tx.run("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(DiagnosticError) as err:
        StateStore.open(url)
    assert err.value.diagnostics[0].code == "state-version"


def test_wal_mode(store: StateStore) -> None:
    with store._read() as tx:
        assert tx.one("PRAGMA journal_mode") == ("wal",)


def test_closed_store_refuses_use(url: str) -> None:
    s = StateStore.open(url)
    s.close()
    with pytest.raises(StateError):
        s.serial("demo")


# --------------------------------------------------------------------------- resources, outputs


def test_new_stack_has_serial_zero_and_nothing_else(store: StateStore) -> None:
    assert store.serial("demo") == 0
    assert store.resources("demo") == {}
    assert store.outputs("demo") == {}
    assert store.stacks() == []


def test_resource_round_trip_and_serial_bumps(store: StateStore) -> None:
    web, db = record("web"), record("db", kind="Cloud::Block::Volume", region="")
    store.put_resource("demo", web)
    assert store.serial("demo") == 1
    store.put_resource("demo", db)
    assert store.serial("demo") == 2
    assert store.resources("demo") == {"db": db, "web": web}
    changed = record("web", physical_id="id-2", spec={"flavor": "large"}, spec_hash="def")
    store.put_resource("demo", changed)
    assert store.serial("demo") == 3
    assert store.resources("demo")["web"] == changed
    assert store.delete_resource("demo", "db") is True
    assert store.serial("demo") == 4
    assert store.delete_resource("demo", "db") is False
    assert store.serial("demo") == 4
    assert list(store.resources("demo")) == ["web"]
    assert store.stacks() == ["demo"]
    assert store.serial("other") == 0


def test_record_from_live() -> None:
    live = LiveResource(
        address="web", kind="Cloud::Compute::Server", physical_id="i-1",
        placement=Placement("aws-eu", "eu-central-1"), name="demo.web",
        attributes={"ip": "1.2.3.4"},
    )
    rec = ResourceRecord.from_live(live, {"flavor": "small"})
    assert (rec.target, rec.region, rec.physical_id) == ("aws-eu", "eu-central-1", "i-1")
    assert rec.spec_hash and rec.attributes == {"ip": "1.2.3.4"}


def test_non_json_values_are_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="web"):
        store.put_resource("demo", record(spec={"x": object()}))
    with pytest.raises(StateError, match="out"):
        store.set_outputs("demo", {"out": float("nan")})
    assert store.serial("demo") == 0


def test_outputs_round_trip_and_replace(store: StateStore) -> None:
    store.set_outputs("demo", {"ip": "10.0.0.1", "ports": [22, 80], "m": {"a": None}})
    assert store.outputs("demo") == {"ip": "10.0.0.1", "ports": [22, 80], "m": {"a": None}}
    store.set_outputs("demo", {"ip": "10.0.0.2"})
    assert store.outputs("demo") == {"ip": "10.0.0.2"}
    assert store.serial("demo") == 0  # outputs do not change the resource serial


def test_outputs_keep_the_order_they_were_set_in(store: StateStore) -> None:
    order = ["zeta", "alpha", "web2_ip", "web10_ip", "beta"]  # a template's order, not sorted
    store.set_outputs("demo", {name: i for i, name in enumerate(order)})
    assert list(store.outputs("demo")) == order
    store.set_outputs("demo", {"b": 1, "a": 2})
    assert list(store.outputs("demo")) == ["b", "a"]


def test_a_schema_2_database_is_migrated(url: str) -> None:
    # a schema 2 database: outputs without a position, stacks without an applied plan
    # or a template
    with StateStore.open(url) as s, s._write() as tx:
        tx.run("DROP TABLE outputs")
        tx.run("CREATE TABLE outputs (stack TEXT NOT NULL, name TEXT NOT NULL, "
               "value TEXT NOT NULL, PRIMARY KEY (stack, name))")
        tx.run("DROP TABLE stacks")
        tx.run("CREATE TABLE stacks (name TEXT PRIMARY KEY, serial INTEGER NOT NULL, "
               "created TEXT NOT NULL, updated TEXT NOT NULL)")
        tx.run("INSERT INTO stacks (name, serial, created, updated) "
               "VALUES ('demo', 0, '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')")
        tx.run("DROP TABLE locks")  # without the generation of schema 4
        tx.run("CREATE TABLE locks (stack TEXT PRIMARY KEY, holder TEXT NOT NULL, "
               "pid INTEGER NOT NULL, host TEXT NOT NULL, acquired TEXT NOT NULL)")
        for name in ("b", "a"):
            tx.run("INSERT INTO outputs (stack, name, value) VALUES ('demo', ?, '1')", (name,))
        tx.run("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with StateStore.open(url) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert list(s.outputs("demo")) == ["a", "b"]  # as they were shown before: by name
        s.set_outputs("demo", {"b": 1, "a": 2})
        assert list(s.outputs("demo")) == ["b", "a"]
        assert s.applied_plan("demo") is None
        s.set_applied_plan("demo", "p1")
        assert s.applied_plan("demo") == "p1" and s.applied_plan("other") is None
        assert s.template("demo") is None  # not known: such a stack is never refused
        s.set_template("demo", "web.yaml")
    with StateStore.open(url) as s:
        assert s.template("demo") == "web.yaml" and s.applied_plan("demo") == "p1"


def test_forget_stack_keeps_history(store: StateStore) -> None:
    store.put_resource("demo", record("web"))
    store.put_resource("keep", record("web"))
    store.set_outputs("demo", {"a": 1})
    with store.lock("demo", "me"):
        run = store.begin_run("demo", "destroy", "me")
        store.journal(run, "demo", "web", "delete", "intent", "id-web")
        store.journal(run, "demo", "web", "delete", "done", "id-web")
        store.end_run(run, "succeeded")
    before = store.serial("demo")
    store.forget_stack("demo", who="alice")
    assert store.resources("demo") == {} and store.outputs("demo") == {}
    assert store.serial("demo") > before  # an old plan can never look current
    assert store.stacks() == ["keep"]
    assert [r.status for r in store.runs("demo")] == ["succeeded"]
    assert len(store.journal_entries(run)) == 2
    assert store.audit_log("demo")[-1].who == "alice"


def test_template_round_trip_kept_by_writes_and_cleared_by_forget(store: StateStore) -> None:
    assert store.template("demo") is None
    store.set_template("demo", "infra/web.yaml")
    assert store.template("demo") == "infra/web.yaml"
    assert store.serial("demo") == 0 and store.stacks() == []  # a template alone is no stack
    store.put_resource("demo", record("web"))
    store.set_outputs("demo", {"a": 1})
    assert store.template("demo") == "infra/web.yaml"
    store.set_template("demo", "web.yaml")
    assert store.template("demo") == "web.yaml" and store.serial("demo") == 1
    assert store.template("other") is None
    store.forget_stack("demo")
    assert store.template("demo") is None


# --------------------------------------------------------------------------- lock


def test_lock_acquire_release_and_info(store: StateStore) -> None:
    info = store.acquire_lock("demo", "alice")
    assert (info.holder, info.pid, info.host) == ("alice", os.getpid(), socket.gethostname())
    assert store.lock_info("demo") == info
    assert store.lock_info("other") is None
    with pytest.raises(StackLocked) as err:  # not re-entrant, even for the same holder
        store.acquire_lock("demo", "alice")
    assert err.value.info == info
    assert store.release_lock("demo", "bob") is False
    assert store.release_lock("demo", "alice") is True
    assert store.lock_info("demo") is None
    with store.lock("demo", "bob") as held:
        assert store.lock_info("demo") == held
    assert store.lock_info("demo") is None


def test_lock_released_when_body_raises(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.lock("demo", "alice"):
        raise RuntimeError("boom")
    assert store.lock_info("demo") is None


def test_stack_locked_message_and_diagnostic(store: StateStore) -> None:
    t0 = datetime(2024, 5, 1, 12, 30, 0, tzinfo=timezone.utc)
    # (kept open: on PostgreSQL closing a store ends its lock sessions)
    with StateStore.open(store.url, clock=lambda: t0) as other:
        other.acquire_lock("demo", "ci-job-17")
        with pytest.raises(StackLocked) as err:
            store.acquire_lock("demo", "alice")
    text = str(err.value)
    assert "ci-job-17" in text and str(os.getpid()) in text and socket.gethostname() in text
    assert "2024-05-01 12:30:00 UTC" in text
    diag = err.value.diagnostic()
    assert diag.code == "stack-locked" and "ci-job-17" in diag.message and diag.hint


def test_second_process_fails_at_once_naming_the_holder(url: str) -> None:
    StateStore.open(url).close()
    holder = spawn_python(HOLD_LOCK.format(url=url, holder="ci-runner-1"))
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "won"
        with StateStore.open(url) as s:
            started = time.monotonic()
            with pytest.raises(StackLocked) as err:
                s.acquire_lock("demo", "laptop")
            assert time.monotonic() - started < 2.0  # at once, no waiting
            info = err.value.info
            assert (info.holder, info.pid, info.host) == ("ci-runner-1", holder.pid,
                                                          socket.gethostname())
            assert abs((datetime.now(timezone.utc) - info.acquired).total_seconds()) < 60
            text = str(err.value)
            assert f"pid {holder.pid}" in text and "ci-runner-1" in text
            assert f"host {socket.gethostname()}" in text and " since " in text
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        with StateStore.open(url) as s:
            assert s.lock_info("demo") is None
            assert s.acquire_lock("demo", "laptop").holder == "laptop"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_many_processes_race_exactly_one_wins(url: str) -> None:
    StateStore.open(url).close()
    procs = [spawn_python(HOLD_LOCK.format(url=url, holder=f"p{i}")) for i in range(6)]
    try:
        results = []
        for p in procs:
            assert p.stdout is not None
            results.append(p.stdout.readline().split())
        winners = [r for r in results if r[0] == "won"]
        assert len(winners) == 1, results
        assert all(r[0] == "lost" for r in results if r[0] != "won")
    finally:
        for p in procs:
            assert p.stdin is not None
            if p.poll() is None:
                p.stdin.write("\n")
                p.stdin.close()
        for p in procs:
            p.wait(timeout=30)


def test_lock_of_killed_process_is_taken_over(url: str) -> None:
    holder = spawn_python(HOLD_LOCK.format(url=url, holder="crashed-apply"))
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "won"
    dead_pid = holder.pid
    os.kill(dead_pid, signal.SIGKILL)
    holder.wait()  # reaped: the pid no longer exists
    with StateStore.open(url) as s:
        assert s.lock_info("demo") is not None  # left behind by the crash
        info = s.acquire_lock("demo", "next-apply")
        assert info.holder == "next-apply" and info.pid == os.getpid()
        (line,) = s.audit_log("demo")
        assert line.who == "next-apply"
        assert "crashed-apply" in line.what and f"pid {dead_pid}" in line.what


def test_lock_of_other_host_is_never_stale(store: StateStore) -> None:
    with store._write() as tx:
        tx.run(
            "INSERT INTO locks (stack, holder, pid, host, acquired) VALUES (?, ?, ?, ?, ?)",
            ("demo", "remote", 999_999_999, "some-other-host", "2024-01-01T00:00:00+00:00"),
        )
    with pytest.raises(StackLocked, match="some-other-host"):
        store.acquire_lock("demo", "me")


def test_force_unlock_writes_audit_line(store: StateStore) -> None:
    assert store.force_unlock("demo", "alice") is None
    assert store.audit_log() == []
    held = store.acquire_lock("demo", "ci")
    removed = store.force_unlock("demo", "alice")
    assert removed == held
    assert store.lock_info("demo") is None
    (line,) = store.audit_log("demo")
    assert line.who == "alice" and line.stack == "demo"
    assert "force-unlocked" in line.what and "ci" in line.what
    # the old holder's release no longer removes anything (nor a new holder's lock)
    store.acquire_lock("demo", "bob")
    assert store.release_lock("demo", "ci") is False
    assert store.lock_info("demo") is not None


# --------------------------------------------------------------------------- runs and journal


def test_begin_run_requires_the_lock(store: StateStore) -> None:
    with pytest.raises(StateError, match="lock"):
        store.begin_run("demo", "apply", "me")
    with store.lock("demo", "me"):
        with pytest.raises(StateError):
            store.begin_run("demo", "apply", "someone-else")
        with pytest.raises(StateError):
            store.begin_run("demo", "upgrade", "me")


def test_run_and_journal_round_trip(store: StateStore) -> None:
    ticks = iter(datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i)
                 for i in range(100))
    with StateStore.open(store.url, clock=lambda: next(ticks)) as s, s.lock("demo", "me"):
        run = s.begin_run("demo", "apply", "me")
        e1 = s.journal(run, "demo", "net", "create", "intent")
        e2 = s.journal(run, "demo", "net", "create", "done", "net-1", {"cidr": "10.0.0.0/24"})
        s.end_run(run, "succeeded")
        assert s.journal_entries(run) == [e1, e2]
        assert (e1.seq, e2.seq) == (1, 2)
        assert e2.detail == {"cidr": "10.0.0.0/24"} and e2.physical_id == "net-1"
        (info,) = s.runs("demo")
        assert (info.id, info.operation, info.holder, info.status) == (run, "apply", "me",
                                                                       "succeeded")
        assert info.finished is not None and info.finished > info.started
    with pytest.raises(StateError):
        store.journal(run, "other-stack", "x", "create", "intent")
    with pytest.raises(StateError):
        store.journal(run, "demo", "x", "create", "started")
    with pytest.raises(StateError):
        store.journal(12345, "demo", "x", "create", "intent")
    with pytest.raises(StateError):
        store.end_run(run, "running")
    with pytest.raises(StateError):
        store.end_run(12345, "failed")


def test_open_intents_after_a_crash(url: str) -> None:
    # A run that is killed between the cloud call and the 'done' record.
    crash = spawn_python(
        f"""
        import os, signal
        from cloudtmpl.state import StateStore
        s = StateStore.open({url!r})
        s.acquire_lock("demo", "apply-1")
        run = s.begin_run("demo", "apply", "apply-1")
        s.journal(run, "demo", "net", "create", "intent")
        s.journal(run, "demo", "net", "create", "done", "net-1")
        s.journal(run, "demo", "web", "create", "intent", detail={{"name": "demo.web"}})
        s.journal(run, "demo", "vol", "create", "intent")
        s.journal(run, "demo", "vol", "create", "failed", detail={{"error": "quota"}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    crash.wait(timeout=30)
    assert crash.returncode == -signal.SIGKILL
    with StateStore.open(url) as s:
        (open_,) = s.open_intents("demo")
        assert (open_.address, open_.action, open_.phase) == ("web", "create", "intent")
        assert open_.detail == {"name": "demo.web"}
        first_run = open_.run_id
        assert s.runs("demo")[0].status == "running"
        with s.lock("demo", "apply-2"):  # the dead holder's lock is taken over ...
            assert s.runs("demo")[0].status == "interrupted"  # ... and its run closed
            run = s.begin_run("demo", "apply", "apply-2")
            # the new run's own intents are not "earlier" ones
            s.journal(run, "demo", "db", "create", "intent")
            assert [e.address for e in s.open_intents("demo", before_run=run)] == ["web"]
            # a failed step in a later run proves nothing about the half-done one
            s.journal(run, "demo", "web", "update", "intent")
            s.journal(run, "demo", "web", "update", "failed", detail={"error": "conflict"})
            assert [e.address for e in s.open_intents("demo", before_run=run)] == ["web"]
            # the engine looks web up, finds it and adopts it: that closes the old intent
            s.journal(run, "demo", "web", "adopt", "done", "srv-9")
            assert s.open_intents("demo", before_run=run) == []
            assert [e.address for e in s.open_intents("demo")] == ["db"]
            s.journal(run, "demo", "db", "create", "done", "db-1")
            s.end_run(run, "succeeded")
        assert s.open_intents("demo") == []
        assert first_run != run


def test_intent_closed_within_run_only_by_same_action(store: StateStore) -> None:
    with store.lock("demo", "me"):
        run = store.begin_run("demo", "apply", "me")
        store.journal(run, "demo", "web", "delete", "intent", "old")
        store.journal(run, "demo", "web", "delete", "done", "old")
        store.journal(run, "demo", "web", "create", "intent")  # replace: second half pending
        store.end_run(run, "failed")
    (entry,) = store.open_intents("demo")
    assert (entry.action, entry.seq) == ("create", 3)


def test_threads_write_journal_concurrently(url: str) -> None:
    threads_n, per_thread = 8, 40
    with StateStore.open(url) as s, s.lock("demo", "me"):
        run = s.begin_run("demo", "apply", "me")
        errors: list[BaseException] = []
        start = threading.Barrier(threads_n)

        def work(t: int) -> None:
            try:
                start.wait()
                for i in range(per_thread):
                    addr = f"r{t}-{i}"
                    s.journal(run, "demo", addr, "create", "intent")
                    s.put_resource("demo", record(addr))
                    s.journal(run, "demo", addr, "create", "done", f"id-{addr}")
                    s.resources("demo")  # readers interleave with writers
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        entries = s.journal_entries(run)
        assert [e.seq for e in entries] == list(range(1, 2 * threads_n * per_thread + 1))
        assert s.serial("demo") == threads_n * per_thread
        assert len(s.resources("demo")) == threads_n * per_thread
        assert s.open_intents("demo") == []
        assert len(s._conns) >= threads_n  # one connection per thread


def test_two_stores_in_one_process_share_the_file(url: str) -> None:
    with StateStore.open(url) as a, StateStore.open(url) as b:
        a.put_resource("demo", record())
        assert b.serial("demo") == 1
        with a.lock("demo", "x"), pytest.raises(StackLocked):
            b.acquire_lock("demo", "y")
