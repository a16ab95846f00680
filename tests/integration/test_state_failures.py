"""A broken state store through the real CLI: each case ends in a diagnostic, never a traceback.

A damaged page in ``state.db``, an immutable state file or directory, a disk that
fills up in the middle of an apply (a small tmpfs mounted for the test, as
root) and non-finite numbers given for a number parameter (refused before
anything is created).  The disk-full case runs a slow apply against the
OpenStack sandbox and fills the file system while servers are being created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clitools import cli_args, cli_env, run, write
from tests.integration.sandbox_admin import configure, servers

LOCAL = """\
heat_template_version: 2021-04-16
parameters:
  n: {type: number, default: 1}
resources:
  value:
    type: OS::Heat::Value
    properties: {value: {get_param: n}}
outputs:
  n: {value: {get_param: n}}
"""

SERVERS = 6


def no_traceback(r: Any) -> None:
    assert "Traceback" not in r.err + r.out, r.err
    assert "Error:" not in r.err.replace("error[", ""), r.err  # no raw exception line


def checkpoint(db: Path) -> None:
    """Everything in the WAL into the database file (so a page edit hits live data)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def rootpage(db: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                               (table,)).fetchone()
    return int(page)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "t.yaml", LOCAL)
    return tmp_path


def test_a_damaged_page_in_the_state_is_a_diagnostic(project: Path) -> None:
    r = run(project, "apply", "t.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    db = project / ".cloudtmpl" / "state.db"
    checkpoint(db)
    page = rootpage(db, "resources")
    with open(db, "r+b") as fh:  # garbage over the resources table's root page
        fh.seek(4096 * (page - 1))
        fh.write(b"\xde\xad\xbe\xef" * 1024)
    for args in (("plan", "t.yaml"), ("apply", "t.yaml", "--yes"), ("destroy", "t.yaml", "--yes"),
                 ("show", "-s", "t"), ("state", "show", "t")):
        r = run(project, *args)
        assert r.code == 1, (args, r.out, r.err)
        assert "error[state-corrupt]" in r.err and "database disk image is malformed" in r.err
        assert "hint: the state is a cache" in r.err and "state.db.damaged" in r.err
        no_traceback(r)
    # the hint is true: with the damaged file moved aside the stack is planned again
    db.rename(db.with_name("state.db.damaged"))
    r = run(project, "apply", "t.yaml", "--yes")
    assert r.code == 0, r.err + r.out


def _immutable(path: Path) -> None:
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not possible here ({done.stderr.strip()}): needs root "
                    "and a file system with the immutable attribute (ext4, xfs, btrfs)")


def _mutable(path: Path) -> None:
    subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_immutable_state_file_is_a_diagnostic_and_leaves_no_lock(project: Path) -> None:
    r = run(project, "apply", "t.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    db = project / ".cloudtmpl" / "state.db"
    checkpoint(db)
    _immutable(db)
    try:
        r = run(project, "apply", "t.yaml", "--yes", "-p", "n=2")
        assert r.code == 1, r.err + r.out
        assert "error[state-readonly]" in r.err
        assert "attempt to write a readonly database" in r.err and "chattr -i" in r.err
        no_traceback(r)
        r = run(project, "show", "-s", "t", "--format", "json")  # reading still works
        assert r.code == 0, r.err
    finally:
        _mutable(db)
    r = run(project, "state", "show", "t", "--format", "json")
    assert r.code == 0 and r.json()["lock"] is None, r.out  # nothing left behind
    r = run(project, "apply", "t.yaml", "--yes", "-p", "n=2")
    assert r.code == 0, r.err + r.out
    assert "n = 2" in r.out


def test_an_immutable_state_directory_is_a_diagnostic(project: Path) -> None:
    r = run(project, "apply", "t.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    state_dir = project / ".cloudtmpl"
    checkpoint(state_dir / "state.db")
    for extra in ("state.db-wal", "state.db-shm"):
        (state_dir / extra).unlink(missing_ok=True)
    shutil.rmtree(state_dir / "state.db.locks")
    _immutable(state_dir)
    try:
        for args in (("apply", "t.yaml", "--yes"), ("outputs", "-s", "t")):
            r = run(project, *args)
            assert r.code == 1, (args, r.err, r.out)
            assert "error[state-readonly]" in r.err and "chattr -i" in r.err, r.err
            no_traceback(r)
    finally:
        _mutable(state_dir)


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", "1e999"])
def test_a_non_finite_number_parameter_is_refused_before_anything_is_made(
        project: Path, value: str) -> None:
    r = run(project, "apply", "t.yaml", "--yes", "-p", f"n={value}")
    assert r.code == 1, r.err + r.out
    assert f'<command line: -p n>: error[parameter-value]: parameter \'n\' (number): "{value}" ' \
        "is not a finite number" in r.err
    no_traceback(r)
    assert not (project / ".cloudtmpl" / "state.db").exists()  # nothing was even opened
    r = run(project, "apply", "t.yaml", "--yes", "-p", "n=2.5")  # and later runs are fine
    assert r.code == 0 and "n = 2.5" in r.out, r.err + r.out


def test_a_non_finite_default_is_a_located_diagnostic(project: Path) -> None:
    write(project / "t.yaml", LOCAL.replace("default: 1", "default: .inf"))
    r = run(project, "validate", "t.yaml")
    assert r.code == 1
    assert "t.yaml:3:30: error[parameter-value]: parameter 'n' (number): inf is not a finite " \
        "number" in r.err
    no_traceback(r)


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for the test (root only), always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs",
                           str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; the file (to delete for space)."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    for small in (4096, 512, 1):  # the last few bytes too
        with open(filler, "ab", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * small)
    return filler


def _records(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM resources").fetchone()[0])
    except sqlite3.Error:
        return 0


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def test_a_disk_that_fills_up_mid_apply_is_a_diagnostic(
        tmp_path: Path, small_disk: Path, openstack_reset: dict[str, Any]) -> None:
    configure(openstack_reset, build_seconds=1.0)
    body = "".join(f"  s{i}:\n    type: OS::Nova::Server\n"
                   f"    properties: {{image: cirros-0.6, flavor: m1.tiny}}\n"
                   for i in range(SERVERS))
    project = tmp_path / "proj"
    project.mkdir()
    (project / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(project / "slow.yaml", "heat_template_version: 2021-04-16\n"
          "placement: {provider: sandbox-openstack, region: de-fra-1}\nresources:\n" + body)
    db = small_disk / "state.db"
    env = {"CLOUDTMPL_STATE": f"sqlite:///{db}"}
    proc = subprocess.Popen(cli_args("apply", "slow.yaml", "--yes", "--parallelism", "2"),
                            cwd=project, env=cli_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _records(db) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        filler = fill(small_disk)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out + err
    assert "error[state-full]" in err and "database or disk is full" in err, err
    assert "hint: free space" in err
    assert "Traceback" not in out + err
    recorded = _records(db)
    assert 1 <= recorded < SERVERS
    # no lock left behind: releasing gave back the lock file's reserve, room enough
    # to remove the lock record on the full disk
    assert _rows(db, "SELECT stack FROM locks") == []
    # space again: the next apply runs (the lock is not left behind) and converges
    filler.unlink()
    r = run(project, "apply", "slow.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    names = sorted(n.extra["metadata"]["cloudtmpl:resource"]
                   for n in servers(openstack_reset, "slow"))
    assert names == [f"s{i}" for i in range(SERVERS)]  # no duplicates, none missing
    assert _rows(db, "SELECT what FROM audit") == []  # nothing had to be taken over
    assert _rows(db, "SELECT status FROM runs ORDER BY id") == [("interrupted",), ("succeeded",)]
    configure(openstack_reset, build_seconds=0.05)
