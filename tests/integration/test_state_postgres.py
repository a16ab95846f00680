"""The state store on a real PostgreSQL server (and SQLite), and ``cloudtmpl state``.

A throwaway server is started once per session (tests/postgres.py: initdb in a
temporary directory, 127.0.0.1 only, as an unprivileged user when run as root);
each test gets a database of its own.  These tests never skip under CI: without
server binaries they fail (scripts/test.sh installs them).

The backend-neutral tests of tests/unit/test_state.py are imported below and
run again here with the ``url``/``store`` fixtures parametrized over SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.state import SCHEMA_VERSION, LockLost, StackLocked, StateStore
from tests import postgres
from tests.integration.clitools import QUICKSTART, ec2, run, stack_instances, write
from tests.integration.pgfixtures import new_database
from tests.unit.statehelpers import record, spawn_python, writes
from tests.unit.test_scaling import (  # noqa: F401  (collected again here, on both backends)
    test_a_schema_5_database_gets_scaling_groups,
    test_group_records_in_the_store,
)
from tests.unit.test_state import (  # noqa: F401  (collected again here, on both backends)
    test_a_schema_2_database_is_migrated,
    test_begin_run_requires_the_lock,
    test_closed_store_refuses_use,
    test_existing_database_is_reopened_and_newer_schema_refused,
    test_force_unlock_writes_audit_line,
    test_forget_stack_keeps_history,
    test_intent_closed_within_run_only_by_same_action,
    test_lock_acquire_release_and_info,
    test_lock_of_killed_process_is_taken_over,
    test_lock_released_when_body_raises,
    test_many_processes_race_exactly_one_wins,
    test_new_stack_has_serial_zero_and_nothing_else,
    test_non_json_values_are_refused,
    test_open_intents_after_a_crash,
    test_outputs_keep_the_order_they_were_set_in,
    test_outputs_round_trip_and_replace,
    test_resource_round_trip_and_serial_bumps,
    test_run_and_journal_round_trip,
    test_second_process_fails_at_once_naming_the_holder,
    test_stack_locked_message_and_diagnostic,
    test_template_round_trip_kept_by_writes_and_cleared_by_forget,
    test_threads_write_journal_concurrently,
    test_two_stores_in_one_process_share_the_file,
)
from tests.unit.test_state_records import (  # noqa: F401  (collected again here, on both backends)
    test_a_schema_4_database_is_migrated_without_loss,
    test_concurrent_writers_lose_nothing,
    test_import_keeps_the_newer_records_and_notes_it_in_the_audit,
    test_provider_records_are_plain_json,
    test_provider_records_round_trip,
    test_reading_records_waits_for_no_writer,
    test_records_are_written_whoever_holds_a_stack_lock,
    test_records_written_by_one_store_are_seen_by_another,
)
from tests.unit.test_statelock import (  # noqa: F401  (collected again here, on both backends)
    test_a_force_unlocked_holder_can_write_nothing,
    test_a_holder_whose_lock_was_taken_over_can_write_nothing,
    test_a_schema_3_database_is_migrated_and_its_old_lock_judged_by_pid,
    test_a_store_without_the_lock_cannot_write_a_locked_stack,
    test_every_acquisition_gets_the_next_generation,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def pg_url(pg_server: postgres.Server) -> str:
    return new_database(pg_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store's URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/state.db"
    return new_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with StateStore.open(url) as s:
        yield s


HOLD = """
    import sys
    from cloudtmpl.state import StateStore, StackLocked
    store = StateStore.open({url!r})
    try:
        store.acquire_lock({stack!r}, {holder!r})
    except StackLocked as exc:
        print("lost", exc.info.holder, exc.info.pid, flush=True)
        sys.exit(0)
    print("won", flush=True)
    sys.stdin.readline()          # hold the lock until told to stop
    print("released" if store.release_lock({stack!r}, {holder!r}) else "gone", flush=True)
"""


def _hold(url: str, stack: str, holder: str) -> subprocess.Popen[str]:
    proc = spawn_python(HOLD.format(url=url, stack=stack, holder=holder))
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "won", line + (proc.stderr.read() if proc.stderr else "")
    return proc


def _finish(proc: subprocess.Popen[str]) -> str:
    """Tell a holder to release; its last line ('released' or 'gone')."""
    assert proc.stdin is not None and proc.stdout is not None
    if proc.poll() is None:
        proc.stdin.write("\n")
        proc.stdin.flush()
    out = proc.stdout.read()
    proc.wait(timeout=30)
    return out.strip()


def _advisory_holders(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    return [int(r[0]) for r in rows]


# --------------------------------------------------------------------------- both backends


def test_different_stacks_are_locked_in_parallel(url: str) -> None:
    StateStore.open(url).close()
    a = _hold(url, "alpha", "job-a")
    b = _hold(url, "beta", "job-b")  # not blocked by alpha's holder
    try:
        with StateStore.open(url) as s:
            assert s.lock_info("alpha").holder == "job-a"  # type: ignore[union-attr]
            assert s.lock_info("beta").holder == "job-b"  # type: ignore[union-attr]
            with pytest.raises(StackLocked, match="job-b"):
                s.acquire_lock("beta", "me")
            s.put_resource("gamma", record())  # other stacks stay writable
        assert _finish(a) == "released" and _finish(b) == "released"
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_lock_contention_fails_fast(url: str) -> None:
    """The loser's acquire returns StackLocked within well under a second."""
    StateStore.open(url).close()
    holder = _hold(url, "demo", "ci-runner")
    try:
        with StateStore.open(url) as s:
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                with pytest.raises(StackLocked):
                    s.acquire_lock("demo", "laptop")
                timings.append(time.perf_counter() - started)
        assert max(timings) < 1.0, timings
        print(f"lock contention latency ({url.split(':')[0]}): "
              f"median {sorted(timings)[2] * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms")
        assert _finish(holder) == "released"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_state_cli_list_show_unlock(url: str, tmp_path: Path) -> None:
    holder_pid = 4242
    with StateStore.open(url) as s:
        s.put_resource("demo", record("web"))
        s.put_resource("demo", record("db"))
        s.set_outputs("demo", {"ip": "10.0.0.1"})
        s.put_resource("other", record("web"))
        with s.lock("demo", "ci-job"):
            run_id = s.begin_run("demo", "apply", "ci-job")
            s.end_run(run_id, "succeeded")
        # a lock row left by a holder on another machine (never stale on SQLite)
        with s._write("demo") as tx:
            tx.run(
                "INSERT INTO locks (stack, holder, pid, host, acquired) VALUES (?, ?, ?, ?, ?)",
                ("demo", "bob@far-away", holder_pid, "far-away", "2024-05-01T12:30:00+00:00"),
            )
    work = tmp_path / "proj"
    work.mkdir()
    (work / "cloudtmpl.yaml").write_text("providers: {}\n")
    env = {"CLOUDTMPL_STATE": url, "USER": "carol"}

    r = run(work, "state", "list", "--format", "json", env=env)
    assert r.code == 0, r.err
    listing = {s["stack"]: s for s in r.json()}
    assert sorted(listing) == ["demo", "other"]
    assert (listing["demo"]["serial"], listing["demo"]["resources"]) == (2, 2)
    assert listing["demo"]["lock"]["holder"] == "bob@far-away"
    assert listing["demo"]["lock"]["pid"] == holder_pid
    assert listing["other"]["lock"] is None
    r = run(work, "state", "list", "--state", url)
    assert r.code == 0, r.err
    assert "demo" in r.out and "bob@far-away (pid 4242 on host far-away)" in r.out

    r = run(work, "state", "show", "demo", "--format", "json", env=env)
    assert r.code == 0, r.err
    shown = r.json()
    assert sorted(shown["resources"]) == ["db", "web"]
    assert shown["outputs"] == {"ip": "10.0.0.1"}
    assert [(x["id"], x["status"]) for x in shown["runs"]] == [(run_id, "succeeded")]
    r = run(work, "state", "show", "demo", env=env)
    assert r.code == 0, r.err
    assert "succeeded" in r.out and "ci-job" in r.out and "far-away" in r.out
    r = run(work, "state", "show", "nope", env=env)
    assert r.code == 1 and "unknown-stack" in r.err

    r = run(work, "state", "unlock", "demo", env=env)
    assert r.code == 1 and "force-required" in r.err
    r = run(work, "state", "unlock", "demo", "--force", env=env)
    assert r.code == 0, r.err
    assert "bob@far-away" in r.out
    with StateStore.open(url) as s:
        assert s.lock_info("demo") is None
        line = s.audit_log("demo")[-1]
    assert line.who == f"carol@{socket.gethostname()}"
    assert "force-unlocked" in line.what and "bob@far-away" in line.what
    r = run(work, "state", "unlock", "demo", "--force", env=env)
    assert r.code == 0 and "not locked" in r.out


# --------------------------------------------------------------------------- PostgreSQL only


def test_pg_stale_row_of_any_host_is_taken_over(pg_url: str) -> None:
    """No session holds the advisory lock: the row is stale even from another host."""
    with StateStore.open(pg_url) as s:
        with s._write("demo") as tx:
            tx.run(
                "INSERT INTO locks (stack, holder, pid, host, acquired) VALUES (?, ?, ?, ?, ?)",
                ("demo", "remote", 999_999_999, "some-other-host", "2024-01-01T00:00:00+00:00"),
            )
        info = s.acquire_lock("demo", "me")
        assert info.holder == "me"
        (line,) = s.audit_log("demo")
        assert "remote" in line.what and "some-other-host" in line.what
        assert "database session ended" in line.what


def test_pg_sigkilled_holder_session_ends_and_frees_the_lock(pg_url: str) -> None:
    holder = _hold(pg_url, "demo", "doomed")
    assert len(_advisory_holders(pg_url)) == 1
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    while _advisory_holders(pg_url) and time.monotonic() - started < 10:
        time.sleep(0.01)
    freed = time.monotonic() - started
    assert _advisory_holders(pg_url) == [], "the killed holder's session did not end"
    print(f"SIGKILLed holder's advisory lock freed after {freed * 1000:.0f} ms")
    with StateStore.open(pg_url) as s:
        assert s.lock_info("demo").holder == "doomed"  # type: ignore[union-attr]
        assert s.acquire_lock("demo", "next").holder == "next"
        assert "database session ended" in s.audit_log("demo")[-1].what


def test_pg_force_unlock_ends_a_live_holders_session(pg_url: str) -> None:
    holder = _hold(pg_url, "demo", "hung-apply")
    try:
        with StateStore.open(pg_url) as s:
            removed = s.force_unlock("demo", "alice@desk")
            assert removed is not None and removed.holder == "hung-apply"
            assert removed.pid == holder.pid
            assert _advisory_holders(pg_url) == []
            assert s.acquire_lock("demo", "alice").holder == "alice"
            assert s.audit_log("demo")[-1].who == "alice@desk"
        # the forced-out holder finds nothing to release
        assert _finish(holder) == "gone"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_pg_lock_session_without_row_still_blocks(pg_url: str) -> None:
    """A holder's row deleted by hand: its live session still holds the stack."""
    with StateStore.open(pg_url) as a, StateStore.open(pg_url) as b:
        a.acquire_lock("demo", "a")
        with a._write("demo") as tx:
            tx.run("DELETE FROM locks WHERE stack = ?", ("demo",))
        with pytest.raises(StackLocked, match="database session with no lock record"):
            b.acquire_lock("demo", "b")
        assert b.force_unlock("demo", "ops") is not None
        assert b.acquire_lock("demo", "b").holder == "b"


def test_pg_terminated_lock_session_is_noticed_and_fenced(pg_url: str) -> None:
    """``pg_terminate_backend`` on the holder's lock session: the holder notices at its
    next check, and once another run took over, none of its writes gets through."""
    with StateStore.open(pg_url) as first, StateStore.open(pg_url) as second:
        first.acquire_lock("demo", "first")
        run = first.begin_run("demo", "apply", "first")
        (pid,) = _advisory_holders(pg_url)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() \
                == (True,)
        with pytest.raises(LockLost, match="database session ended"):
            first.check_lock("demo")
        taken = second.acquire_lock("demo", "second")
        assert taken.generation == 2
        assert "database session ended" in second.audit_log("demo")[-1].what
        for name, write in writes(first, run).items():
            with pytest.raises(LockLost, match="second took it over"):
                write()
            assert second.lock_info("demo") == taken, name
        assert second.resources("demo") == {}


def test_pg_closing_the_store_frees_its_locks(pg_url: str) -> None:
    with StateStore.open(pg_url) as a:
        a.acquire_lock("demo", "forgetful")
    with StateStore.open(pg_url) as b:
        assert b.acquire_lock("demo", "next").holder == "next"


MIGRATE = """
    import sys
    import cloudtmpl.state.schema as schema
    from cloudtmpl.state import StateStore
    if {migrate!r}:
        schema.SCHEMA_VERSION = schema.SCHEMA_VERSION + 1
        schema.MIGRATIONS[schema.SCHEMA_VERSION - 1] = (
            "ALTER TABLE stacks ADD COLUMN note TEXT",
            "CREATE TABLE extra (id {{autoinc_pk}}, what TEXT NOT NULL)",
        )
    sys.stdin.readline()          # start together
    with StateStore.open({url!r}) as s:
        print(s.schema_version(), flush=True)
"""


@pytest.mark.parametrize("migrate", [False, True], ids=["create", "migrate"])
def test_pg_schema_created_or_migrated_by_processes_at_once(
    pg_server: postgres.Server, migrate: bool
) -> None:
    for _ in range(3):  # a few rounds: the race window is small
        url = new_database(pg_server)
        if migrate:
            StateStore.open(url).close()  # the current schema, to be migrated
        procs = [spawn_python(MIGRATE.format(url=url, migrate=migrate)) for _ in range(4)]
        time.sleep(0.5)  # all imported and waiting
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("\n")
            p.stdin.flush()
        results = [p.communicate(timeout=60) for p in procs]
        expected = SCHEMA_VERSION + 1 if migrate else SCHEMA_VERSION
        for p, (out, err) in zip(procs, results, strict=True):
            assert p.returncode == 0, err
            assert out.strip() == str(expected), err
    if migrate:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT COUNT(*) FROM extra").fetchone() == (0,)


def test_pg_wrong_password_is_a_diagnostic_without_it(pg_server: postgres.Server) -> None:
    secret = "Wr0ng-and-s3cret"
    bad = pg_server.url(password=secret)
    with pytest.raises(DiagnosticError) as err:
        StateStore.open(bad)
    (diag,) = err.value.diagnostics
    assert diag.code == "state-connect"
    assert "password authentication failed" in diag.message
    assert secret not in diag.message and secret not in diag.hint
    assert err.value.__cause__ is None or secret not in repr(err.value.__cause__)
    # through the real CLI, from --state and from CLOUDTMPL_STATE
    for args, env in (
        (["state", "list", "--state", bad], {}),
        (["outputs", "-s", "x"], {"CLOUDTMPL_STATE": bad}),
    ):
        r = run(REPO, *args, env=env)
        assert r.code == 1
        assert "state-connect" in r.err
        assert secret not in r.err and secret not in r.out
        assert "Traceback" not in r.err


def test_pg_unknown_database_is_a_connect_diagnostic(pg_server: postgres.Server) -> None:
    with pytest.raises(DiagnosticError) as err:
        StateStore.open(pg_server.url("no_such_db"))
    (diag,) = err.value.diagnostics
    assert diag.code == "state-connect" and "no_such_db" in diag.message
    assert pg_server.password not in diag.message


def test_pg_description_hides_the_password(pg_url: str, pg_server: postgres.Server) -> None:
    with StateStore.open(pg_url) as s:
        assert pg_server.password not in s.description
        assert s.description.startswith("postgresql://cloudtmpl:***@127.0.0.1:")
        assert s.url == pg_url  # reopenable


# --------------------------------------------------------------------------- apply on PostgreSQL


@pytest.mark.integration
def test_quickstart_apply_and_destroy_with_postgres_state(
    pg_url: str, tmp_path: Path, aws_reset: dict[str, Any]
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(project / "stack.yaml", QUICKSTART.read_text())

    r = run(project, "apply", "stack.yaml", "--yes", "--state", pg_url)
    assert r.code == 0, r.err + r.out
    assert not (project / ".cloudtmpl" / "state.db").exists()  # nothing went to SQLite
    with StateStore.open(pg_url) as s:
        records = s.resources("stack")
        (apply_run,) = s.runs("stack")
        assert apply_run.status == "succeeded"
        assert s.lock_info("stack") is None
        assert s.open_intents("stack") == []
        journal = s.journal_entries(apply_run.id)
    assert sorted(records) == [
        "data", "data_attachment", "key", "web1", "web2", "web2_ip", "web_sg"
    ]
    assert [e.seq for e in journal] == list(range(1, len(journal) + 1))
    assert len(stack_instances(aws_reset, "eu-central-1", "stack")) == 2

    r = run(project, "plan", "stack.yaml", "--detailed-exitcode", env={"CLOUDTMPL_STATE": pg_url})
    assert r.code == 0, r.err + r.out
    r = run(project, "state", "show", "stack", "--format", "json", "--state", pg_url)
    assert r.code == 0, r.err
    assert [x["status"] for x in json.loads(r.out)["runs"]] == ["succeeded"]

    r = run(project, "destroy", "stack.yaml", "--yes", "--state", pg_url)
    assert r.code == 0, r.err + r.out
    assert stack_instances(aws_reset, "eu-central-1", "stack") == []
    with StateStore.open(pg_url) as s:
        assert s.resources("stack") == {}
        assert [x.status for x in s.runs("stack")] == ["succeeded", "succeeded"]
    vols = ec2(aws_reset, "eu-central-1").describe_volumes(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["stack"]}]
    )["Volumes"]
    assert [v for v in vols if v["State"] != "deleted"] == []


# --------------------------------------------------------------------------- provider records

TEAM_PROJECT = """\
providers:
  lab: {type: libcloud, driver: filecloud, key_env: FILECLOUD_TOKEN,
        regions: {lab-de: {country: DE, jurisdiction: EU}}}
default_target: lab
"""

TEAM_STACK = """\
heat_template_version: 2021-04-16
placement: {provider: lab, region: lab-de}
resources:
  app:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: fc-small}
  data:
    type: Cloud::Block::Volume
    properties: {size: 1}
  data_attachment:
    type: Cloud::Block::VolumeAttachment
    properties:
      instance_uuid: {get_resource: app}
      volume_id: {get_resource: data}
"""


@pytest.mark.integration
def test_pg_team_members_share_the_libcloud_attachment_records(
    pg_url: str, tmp_path: Path
) -> None:
    """Two members, two checkouts (two machines), one cloud, one PostgreSQL state: what
    one applied, the other plans as no change, attachment included."""
    env = {"FILECLOUD_TOKEN": "lab-token", "CLOUDTMPL_STATE": pg_url,
           "CLOUDTMPL_FILECLOUD_PATH": str(tmp_path / "filecloud.json")}
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    for checkout in (alice, bob):
        checkout.mkdir()
        write(checkout / "cloudtmpl.yaml", TEAM_PROJECT)
        write(checkout / "lab.yaml", TEAM_STACK)

    r = run(alice, "apply", "lab.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    with StateStore.open(pg_url) as s:
        (volume_id, rec), = s.provider_records("lab", "attachments").items()
    assert rec["address"] == "data_attachment" and rec["stack"] == "lab"
    cloud = json.loads((tmp_path / "filecloud.json").read_text())
    assert cloud["volumes"][volume_id]["attached_to"] == rec["node"]
    assert not (alice / ".cloudtmpl" / "libcloud").exists()  # no file of its own

    r = run(bob, "plan", "lab.yaml", "--detailed-exitcode", env=env)
    assert r.code == 0, r.err + r.out  # bob sees alice's attachment: nothing to create

    r = run(bob, "destroy", "lab.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    cloud = json.loads((tmp_path / "filecloud.json").read_text())
    assert cloud["nodes"] == {} and cloud["volumes"] == {}
    with StateStore.open(pg_url) as s:
        assert s.provider_records("lab", "attachments") == {}
