"""The providers' records in the state store (cloudtmpl/state/provider_records.py), and
the libcloud attachment records kept there (cloudtmpl/providers/libcloud/records.py).

Tests that take the ``url`` or ``store`` fixture are backend-neutral:
tests/integration/test_state_postgres.py runs them again against both SQLite and a
real PostgreSQL server (it overrides those fixtures).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.libcloud.records import NAMESPACE, AttachmentRecords
from cloudtmpl.state import SCHEMA_VERSION, StateStore
from tests.unit.statehelpers import record, spawn_python


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh, empty store's URL."""
    return f"sqlite:///{tmp_path}/state/state.db"


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with StateStore.open(url) as s:
        yield s


ATT = {"address": "data_att", "stack": "app", "node": "node-1", "spec": "s1"}


# --------------------------------------------------------------------------- the store


def test_provider_records_round_trip(store: StateStore) -> None:
    assert store.provider_records("lab", NAMESPACE) == {}
    store.put_provider_record("lab", NAMESPACE, "vol-2", ATT)
    store.put_provider_record("lab", NAMESPACE, "vol-1", {**ATT, "address": "other"})
    store.put_provider_record("lab", "elsewhere", "vol-1", 1)
    store.put_provider_record("other-target", NAMESPACE, "vol-1", 2)
    assert store.provider_records("lab", NAMESPACE) == {
        "vol-1": {**ATT, "address": "other"}, "vol-2": ATT}
    assert list(store.provider_records("lab", NAMESPACE)) == ["vol-1", "vol-2"]
    store.put_provider_record("lab", NAMESPACE, "vol-1", ATT)  # replaced
    assert store.provider_records("lab", NAMESPACE)["vol-1"] == ATT

    assert store.amend_provider_record("lab", NAMESPACE, "vol-2", {"spec": "s2"})
    assert store.provider_records("lab", NAMESPACE)["vol-2"] == {**ATT, "spec": "s2"}
    assert not store.amend_provider_record("lab", NAMESPACE, "vol-9", {"spec": "s2"})
    assert "vol-9" not in store.provider_records("lab", NAMESPACE)

    assert store.forget_provider_record("lab", NAMESPACE, "vol-1")
    assert not store.forget_provider_record("lab", NAMESPACE, "vol-1")
    assert store.provider_records("lab", NAMESPACE) == {"vol-2": {**ATT, "spec": "s2"}}
    assert store.provider_records("lab", "elsewhere") == {"vol-1": 1}
    assert store.provider_records("other-target", NAMESPACE) == {"vol-1": 2}
    # they are no stack's state: no stack appears, no serial moves
    assert store.stacks() == [] and store.stack_summaries() == []
    assert store.serial("app") == 0


def test_provider_records_are_plain_json(store: StateStore) -> None:
    with pytest.raises(DiagnosticError) as err:
        store.put_provider_record("lab", NAMESPACE, "vol-1", {"size": float("nan")})
    assert err.value.diagnostics[0].code == "state-value"
    assert "the attachments record 'vol-1' of target 'lab'" in err.value.diagnostics[0].message
    assert store.provider_records("lab", NAMESPACE) == {}


def test_records_written_by_one_store_are_seen_by_another(url: str) -> None:
    """Two connections (on PostgreSQL: two team members' machines) share the records."""
    with StateStore.open(url) as first, StateStore.open(url) as second:
        first.put_provider_record("lab", NAMESPACE, "vol-1", ATT)
        assert second.provider_records("lab", NAMESPACE) == {"vol-1": ATT}
        assert second.amend_provider_record("lab", NAMESPACE, "vol-1", {"spec": "s2"})
        assert first.provider_records("lab", NAMESPACE) == {"vol-1": {**ATT, "spec": "s2"}}
        first.forget_provider_record("lab", NAMESPACE, "vol-1")
        assert second.provider_records("lab", NAMESPACE) == {}


def test_records_are_written_whoever_holds_a_stack_lock(url: str) -> None:
    """They describe the cloud, not a stack: another run's lock does not fence them."""
    with StateStore.open(url) as holder, StateStore.open(url) as other:
        holder.acquire_lock("app", "first")
        other.put_provider_record("lab", NAMESPACE, "vol-1", ATT)
        assert holder.provider_records("lab", NAMESPACE) == {"vol-1": ATT}
        holder.release_lock("app", "first")


def test_reading_records_waits_for_no_writer(url: str) -> None:
    """A plan reads them while another process writes (no lock is taken to read)."""
    with StateStore.open(url) as writer, StateStore.open(url) as reader:
        writer.put_provider_record("lab", NAMESPACE, "vol-1", ATT)
        with writer._write("#records:lab", fenced=False) as tx:  # a writer mid-transaction
            tx.run("UPDATE provider_records SET value = '{}' WHERE key = 'vol-1'")
            seen: list[object] = []
            thread = threading.Thread(
                target=lambda: seen.append(reader.provider_records("lab", NAMESPACE)))
            thread.start()
            thread.join(timeout=5)
            assert not thread.is_alive(), "the read waited for the writer"
        assert seen == [{"vol-1": ATT}]  # the last committed records


WRITER = """
    import sys
    from cloudtmpl.state import StateStore
    with StateStore.open({url!r}) as s:
        sys.stdin.readline()          # start together
        for i in range(10):
            s.put_provider_record("lab", "attachments", f"vol-{n}-{{i}}", {{"n": {n}}})
            s.amend_provider_record("lab", "attachments", "shared", {{f"w{n}-{{i}}": i}})
"""


def test_concurrent_writers_lose_nothing(url: str) -> None:
    with StateStore.open(url) as s:
        s.put_provider_record("lab", NAMESPACE, "shared", {})
    procs = [spawn_python(WRITER.format(url=url, n=n)) for n in range(4)]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with StateStore.open(url) as s:
        records = s.provider_records("lab", NAMESPACE)
    assert sorted(records) == sorted([f"vol-{n}-{i}" for n in range(4) for i in range(10)]
                                     + ["shared"])
    # every read-modify-write of the one record kept every other's fields
    assert records["shared"] == {f"w{n}-{i}": i for n in range(4) for i in range(10)}


def test_import_keeps_the_newer_records_and_notes_it_in_the_audit(store: StateStore) -> None:
    store.put_provider_record("lab", NAMESPACE, "vol-1", ATT)
    added = store.import_provider_records(
        "lab", NAMESPACE, {"vol-1": {**ATT, "spec": "old"}, "vol-2": {**ATT, "stack": "db"}},
        stacks=["app", "db", "app"], what="imported 2 records from somewhere")
    assert added == 1
    assert store.provider_records("lab", NAMESPACE) == {
        "vol-1": ATT, "vol-2": {**ATT, "stack": "db"}}
    for stack in ("app", "db"):
        (line,) = store.audit_log(stack)
        assert (line.who, line.what) == ("cloudtmpl", "imported 2 records from somewhere")


def test_a_schema_4_database_is_migrated_without_loss(url: str) -> None:
    # a schema 4 database: everything but the providers' records, with a stack in it
    with StateStore.open(url) as s:
        s.put_resource("app", record("web"))
        s.set_outputs("app", {"ip": "10.0.0.5"})
        s.set_template("app", "app.yaml")
        with s._write() as tx:
            tx.run("DROP TABLE provider_records")
            tx.run("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        serial = s.serial("app")
    with StateStore.open(url) as s:
        assert s.schema_version() == SCHEMA_VERSION == 6  # 4 -> 5 -> 6 (scaling_groups)
        assert s.resources("app") == {"web": record("web")}
        assert s.outputs("app") == {"ip": "10.0.0.5"} and s.template("app") == "app.yaml"
        assert s.serial("app") == serial
        assert s.provider_records("lab", NAMESPACE) == {}
        s.put_provider_record("lab", NAMESPACE, "vol-1", ATT)
    with StateStore.open(url) as s:
        assert s.provider_records("lab", NAMESPACE) == {"vol-1": ATT}


# --------------------------------------------------------------------------- the libcloud records


def legacy_file(project: Path, target: str, data: object) -> Path:
    """A records file as an older cloudtmpl wrote it."""
    path = project / ".cloudtmpl" / "libcloud" / f"{target}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return path


def test_attachment_records_live_in_the_store(store: StateStore, tmp_path: Path) -> None:
    records = AttachmentRecords(store, "lab", "target 'lab'",
                                tmp_path / ".cloudtmpl" / "libcloud" / "lab.json")
    records.put("vol-1", ATT)
    records.amend("vol-1", {"spec": "s2"})
    records.amend("vol-9", {"spec": "s2"})  # no record: nothing written
    assert records.all() == {"vol-1": {**ATT, "spec": "s2"}}
    assert store.provider_records("lab", NAMESPACE) == records.all()
    records.forget("vol-1")
    records.forget("vol-1")  # gone already: fine
    assert records.all() == {}
    assert not (tmp_path / ".cloudtmpl").exists()  # no file of their own any more


def test_the_old_records_file_is_imported_once(store: StateStore, tmp_path: Path) -> None:
    old = {"vol-1": {**ATT, "spec": "old"}, "vol-2": {**ATT, "stack": "db", "node": "n2"},
           "vol-3": {"address": "x"}}
    path = legacy_file(tmp_path, "lab", {"attachments": old})
    text = path.read_text(encoding="utf-8")
    store.put_provider_record("lab", NAMESPACE, "vol-1", ATT)  # written since: newer

    records = AttachmentRecords(store, "lab", "target 'lab'", path)
    assert records.all() == {**old, "vol-1": ATT}
    assert not path.exists()
    kept = path.with_name("lab.json.imported")
    assert kept.read_text(encoding="utf-8") == text  # nothing lost
    for stack in ("app", "db"):
        (line,) = store.audit_log(stack)
        assert line.what == (f"imported 3 libcloud attachment records of target 'lab' from "
                             f"{path} into the state (the file is kept as lab.json.imported)")

    records.forget("vol-2")
    again = AttachmentRecords(store, "lab", "target 'lab'", path)  # the next run
    assert again.all() == {"vol-1": ATT, "vol-3": {"address": "x"}}
    assert len(store.audit_log()) == 2


def test_a_damaged_old_records_file_is_kept_aside(store: StateStore, tmp_path: Path) -> None:
    path = legacy_file(tmp_path, "lab", [])
    path.write_text("{not json", encoding="utf-8")
    records = AttachmentRecords(store, "lab", "target 'lab'", path)
    assert records.all() == {}  # as the older cloudtmpl read it
    assert path.with_name("lab.json.imported").read_text(encoding="utf-8") == "{not json"
    assert store.audit_log() == []  # no stack's records were in it


def test_without_a_store_no_attachment_is_found_or_recorded(tmp_path: Path) -> None:
    path = legacy_file(tmp_path, "lab", {"attachments": {"vol-1": ATT}})
    records = AttachmentRecords(None, "lab", "target 'lab'", path)
    assert records.all() == {}
    for write in (lambda: records.put("vol-1", ATT), lambda: records.forget("vol-1"),
                  lambda: records.amend("vol-1", {"spec": "s"})):
        with pytest.raises(CloudError, match="target 'lab': volume attachments need the "
                           "state store to record them in") as err:
            write()
        assert err.value.permanent
    assert path.exists()  # left for a run that has the store
