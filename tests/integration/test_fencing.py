"""One writer per stack, end to end: the real CLI, the OpenStack sandbox, real PostgreSQL.

**The fencing test**: an apply of a stack of slow servers runs on PostgreSQL
state; mid-apply its lock session is terminated (``pg_terminate_backend``, as
a DBA or a failover would) and a second apply starts at once.  The first must
stop within one step with a ``lock-lost`` diagnostic (exit 1), the second must
run alone - no journal entry of the first after the second took the lock - and
the end state must be right: every server exactly once in the cloud, the state
matching it, a converged plan.  Ten rounds, one stack each; the per-round
numbers are printed (``pytest -s``).

On SQLite, an apply killed (``kill -9``) inside a PID namespace, whose lock
record says pid 1, must not block the next apply: the lock file it held is
free, so the record is stale and is taken over.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from cloudtmpl.state import StateStore
from tests import postgres
from tests.integration.clitools import cli_args, cli_env, run, write
from tests.integration.pgfixtures import new_database
from tests.integration.sandbox_admin import configure, servers

ROUNDS = 10
SERVERS = 8
PARALLELISM = 2


def template(n: int) -> str:
    body = "".join(f"  s{i}:\n    type: OS::Nova::Server\n"
                   f"    properties: {{image: cirros-0.6, flavor: m1.tiny}}\n"
                   for i in range(n))
    return ("heat_template_version: 2021-04-16\n"
            "placement: {provider: sandbox-openstack, region: de-fra-1}\nresources:\n" + body)


@pytest.fixture
def project(tmp_path: Path, openstack_reset: dict[str, Any]) -> Iterator[Path]:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "slow.yaml", template(SERVERS))
    configure(openstack_reset, build_seconds=0.8)
    yield tmp_path
    configure(openstack_reset, build_seconds=0.05)


def start(project: Path, stack: str, env: dict[str, str],
          prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen([*prefix, *cli_args("apply", "slow.yaml", "-s", stack, "--yes",
                                                "--parallelism", str(PARALLELISM))],
                            cwd=project, env=cli_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def wait_until(what: str, check: Any, proc: subprocess.Popen[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the apply ended before {what}: {out}{err}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def end_state_problems(sandbox: dict[str, Any], project: Path, stack: str,
                       env: dict[str, str], url: str) -> list[str]:
    """What is wrong with the stack's end state (empty: every server once, state matches)."""
    problems = []
    live = servers(sandbox, stack)
    names = sorted(n.extra["metadata"]["cloudtmpl:resource"] for n in live)
    if names != [f"s{i}" for i in range(SERVERS)]:
        problems.append(f"servers in the cloud: {names}")
    with StateStore.open(url) as s:
        records = s.resources(stack)
        lock = s.lock_info(stack)
    if {a: r.physical_id for a, r in records.items()} != \
            {n.extra["metadata"]["cloudtmpl:resource"]: n.id for n in live}:
        problems.append("the state's records do not match the cloud")
    if lock is not None:
        problems.append(f"a lock was left behind: {lock.describe()}")
    r = run(project, "plan", "slow.yaml", "-s", stack, "--detailed-exitcode", env=env)
    if r.code != 0:
        problems.append(f"plan after both applies: exit {r.code}: {r.out[-400:]}{r.err}")
    return problems


def test_the_fencing_test(project: Path, openstack_reset: dict[str, Any],
                          pg_server: postgres.Server) -> None:
    url = new_database(pg_server)
    env = {"CLOUDTMPL_STATE": url}
    results = []
    for round_ in range(ROUNDS):
        stack = f"fence{round_}"
        first = start(project, stack, env)
        try:
            with StateStore.open(url) as s:  # mid-apply: a server is up, more are coming
                wait_until("a server was recorded",
                           lambda s=s, stack=stack: len(s.resources(stack)) >= 1, first)
            with psycopg.connect(url, autocommit=True) as conn:
                terminated = conn.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE application_name = %s", (f"cloudtmpl lock {stack}",)).fetchall()
            cut = datetime.now(timezone.utc)
            assert terminated == [(True,)], terminated
            second = start(project, stack, env)
            out1, err1 = first.communicate(timeout=120)
            out2, err2 = second.communicate(timeout=120)
        finally:
            for p in (first, locals().get("second")):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
        assert first.returncode == 1, out1 + err1
        # noticed before its next step (the session ended) or, when a step in flight
        # ended after the take-over, at that step's first write (the fencing token)
        assert "error[lock-lost]" in err1, err1
        assert "database session ended" in err1 or " took it over" in err1, err1
        assert "Traceback" not in out1 + err1 + out2 + err2
        assert second.returncode == 0, out2 + err2

        with StateStore.open(url) as s:
            run1, run2 = s.runs(stack)
            journal1 = s.journal_entries(run1.id)
            journal2 = s.journal_entries(run2.id)
            audit = s.audit_log(stack)
        # the second run owned the stack from its acquisition on, at the latest from the
        # moment its run began; the first wrote nothing after that
        took = min([run2.started] + [a.at for a in audit if "took over" in a.what])
        late = [e for e in journal1 if e.at >= took]
        assert late == [], late
        assert all(e.at > took for e in journal2)
        assert run1.status in ("interrupted", "failed") and run2.status == "succeeded"
        started_after_cut = sum(1 for e in journal1 if e.phase == "intent" and e.at > cut)
        assert started_after_cut <= PARALLELISM  # within one step (one batch of steps)
        steps1 = {e.address for e in journal1 if e.phase == "done"}
        assert 1 <= len(steps1) < SERVERS  # the first really was stopped midway
        problems = end_state_problems(openstack_reset, project, stack, env, url)
        assert problems == [], problems
        how = "took over" if any("took over" in a.what for a in audit) else "after a release"
        noticed = "its session check" if "database session ended" in err1 else "a fenced write"
        results.append(
            f"round {round_}: first done {len(steps1)}/{SERVERS}, stopped by {noticed}, "
            "steps started after the "
            f"cut {started_after_cut}, journal entries after the take-over {len(late)}, "
            f"second {how} and made {sum(1 for e in journal2 if e.phase == 'done')}, "
            "end state ok")
    print("\n" + "\n".join(results))
    assert len(results) == ROUNDS


# --------------------------------------------------------------------------- SQLite


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


def plain_openstack(project: Path, sandbox: dict[str, Any]) -> dict[str, str]:
    """Reach the OpenStack sandbox as a plain ``type: openstack`` target (clouds.yaml, the
    password in secure.yaml under $HOME): nothing in the run looks after the sandbox,
    which a command in a PID namespace must not (its pids are not visible there)."""
    home = project / "home"
    (home / ".config" / "openstack").mkdir(parents=True)
    write(project / "cloudtmpl.yaml", "providers:\n"
          "  os-x: {type: openstack, cloud: ci, catalog: sandbox-openstack}\n")
    write(project / "clouds.yaml", yaml.safe_dump({"clouds": {"ci": {
        "region_name": "de-fra-1",
        "auth": {"auth_url": sandbox["auth_url"], "username": sandbox["username"],
                 "project_name": sandbox["project_name"], "user_domain_name": "Default",
                 "project_domain_name": "Default"}}}}))
    write(home / ".config" / "openstack" / "secure.yaml", yaml.safe_dump(
        {"clouds": {"ci": {"auth": {"password": sandbox["password"]}}}}))
    write(project / "slow.yaml", template(SERVERS).replace("sandbox-openstack", "os-x"))
    return {"HOME": str(home)}


def test_a_holder_killed_in_a_pid_namespace_does_not_block_the_next_apply(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    if os.geteuid() != 0:
        pytest.skip("a PID namespace (unshare -p) needs root here")
    probe = subprocess.run([unshare, "-pf", "--mount-proc", "true"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a PID namespace here: {probe.stderr.strip()}")
    env = plain_openstack(project, openstack_reset)
    db = project / ".cloudtmpl" / "state.db"
    holder = start(project, "slow", env, (unshare, "-pf", "--mount-proc"))
    try:
        def recorded() -> Any:
            if not db.exists():
                return None
            with StateStore.open(str(db)) as s:
                return s.lock_info("slow") if s.resources("slow") else None
        lock = wait_until("a server was recorded", recorded, holder)
        assert lock.pid == 1  # what a holder in a PID namespace records
        (inner,) = _children(holder.pid)
        os.kill(inner, signal.SIGKILL)
        holder.communicate(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with StateStore.open(str(db)) as s:
        left = s.lock_info("slow")
        assert left is not None and left.pid == 1  # left behind by the kill
        made = len(s.resources("slow"))
    assert 1 <= made < SERVERS  # it was killed midway
    r = run(project, "apply", "slow.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert "stack-locked" not in r.err
    with StateStore.open(str(db)) as s:
        line = s.audit_log("slow")[-1].what
        assert "took over stale lock of" in line and "(pid 1 on host" in line
        assert "its process ended (the lock file is free)" in line
        assert s.lock_info("slow") is None
    names = sorted(n.extra["metadata"]["cloudtmpl:resource"]
                   for n in servers(openstack_reset, "slow"))
    assert names == [f"s{i}" for i in range(SERVERS)]  # no duplicates, none missing
