"""A resource record, a Python child process, a lock holder's script and every kind of
write a lock holder makes, for the state tests (SQLite here, PostgreSQL too in
tests/integration/test_state_postgres.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloudtmpl.state import ResourceRecord, StateStore

REPO = Path(__file__).resolve().parents[2]


def record(address: str = "web", **kw: object) -> ResourceRecord:
    base: dict[str, object] = dict(
        address=address,
        kind="Cloud::Compute::Server",
        target="os-fra",
        region="RegionOne",
        physical_id=f"id-{address}",
        name=f"demo.{address}",
        spec={"flavor": "small", "tags": ["a", "b"], "nested": {"x": 1}},
        spec_hash="abc123",
        attributes={"first_address": "10.0.0.5"},
    )
    base.update(kw)
    return ResourceRecord(**base)  # type: ignore[arg-type]


def spawn_python(code: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


HOLD_LOCK = """
    import sys
    from cloudtmpl.state import StateStore, StackLocked
    store = StateStore.open({url!r})
    try:
        store.acquire_lock("demo", {holder!r})
    except StackLocked as exc:
        print("lost", exc.info.holder, exc.info.pid, flush=True)
        sys.exit(0)
    print("won", flush=True)
    sys.stdin.readline()          # hold the lock until told to stop
    store.release_lock("demo", {holder!r})
"""


def writes(store: StateStore, run_id: int) -> dict[str, Callable[[], Any]]:
    """Every kind of write of stack 'demo' that a lock holder makes."""
    return {
        "put_resource": lambda: store.put_resource("demo", record("late")),
        "delete_resource": lambda: store.delete_resource("demo", "web"),
        "set_outputs": lambda: store.set_outputs("demo", {"x": 1}),
        "set_parameter_digests": lambda: store.set_parameter_digests("demo", {"p": "d"}),
        "set_template": lambda: store.set_template("demo", "other.yaml"),
        "set_applied_plan": lambda: store.set_applied_plan("demo", "plan-2"),
        "forget_stack": lambda: store.forget_stack("demo"),
        "journal": lambda: store.journal(run_id, "demo", "web", "delete", "intent"),
        "begin_run": lambda: store.begin_run("demo", "apply", "first"),
        "end_run": lambda: store.end_run(run_id, "succeeded"),
    }
