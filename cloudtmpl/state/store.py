"""StateStore: opening a store by URL, and a stack's resources, outputs and settings.

Per stack the store holds ``resources`` (address -> :class:`ResourceRecord`;
every change bumps the stack's ``serial``, and a plan file records the serial it
saw), ``outputs`` (in the template's order), the digests of ``immutable``
parameters, the template file the stack was last applied from, and the id of
the last plan file applied.  The lock (:mod:`cloudtmpl.state.lock`), the runs
and journal (:mod:`cloudtmpl.state.journal`) and the providers' records
(:mod:`cloudtmpl.state.provider_records`) are the store's other parts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudtmpl.diagnostics import DiagnosticError, error
from cloudtmpl.state.journal import RunJournal
from cloudtmpl.state.lock import StackLocks
from cloudtmpl.state.postgres import PostgresBackend
from cloudtmpl.state.provider_records import ProviderRecords
from cloudtmpl.state.records import (
    LOCK_COLUMNS,
    Clock,
    ResourceRecord,
    StackSummary,
    dt,
    dump,
    lock_from_row,
    utcnow,
)
from cloudtmpl.state.scaling_groups import ScalingGroups
from cloudtmpl.state.sqlite import STATE_DIR, STATE_FILE, SQLiteBackend


def open_backend(url: str, base: Path | None) -> SQLiteBackend | PostgresBackend:
    """``sqlite:///<path>`` (absolute if ``<path>`` starts with ``/``), a plain path, or
    ``postgresql://`` / ``postgres://``."""
    text = url.strip()
    hint = (
        "use sqlite:///relative/path, sqlite:////absolute/path or a plain file path "
        f"(default: sqlite:///{STATE_DIR}/{STATE_FILE} in the project directory), "
        "or postgresql://USER@HOST:PORT/DATABASE for a team's shared state"
    )
    if not text:
        raise error("state-url", "the state URL is empty", hint=hint)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        scheme = scheme.lower()
        if scheme in ("postgresql", "postgres"):
            return PostgresBackend(text)
        if scheme != "sqlite":
            raise error("state-url", f"unknown state URL scheme '{scheme}://'", hint=hint)
        if not rest.startswith("/"):
            raise error(
                "state-url",
                f"a sqlite state URL has no host part: '{url}'",
                hint=hint,
            )
        raw = rest[1:]
        if not raw or raw == ":memory:":
            raise error("state-url", f"'{url}' does not name a database file", hint=hint)
    else:
        raw = text
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (base if base is not None else Path.cwd()) / path
    return SQLiteBackend(path.absolute())


class StateStore(StackLocks, RunJournal, ProviderRecords, ScalingGroups):
    """Per-stack resources, outputs, runs, journal, lock and audit trail; the providers'
    records.

    Open with :meth:`open`; close with :meth:`close` or use as a context manager.
    Safe to share between threads (one connection per thread, see
    :mod:`cloudtmpl.state.core`).
    """

    @classmethod
    def open(
        cls,
        url: str,
        *,
        base: Path | None = None,
        clock: Clock = utcnow,
    ) -> StateStore:
        """Open (creating if needed) the store at ``url``.

        ``url`` is ``sqlite:///<path>`` - ``<path>`` absolute if it starts with
        ``/`` (``sqlite:////abs/state.db``), else relative to ``base`` (default:
        the working directory) - or a plain file path, or
        ``postgresql://user@host:port/db`` (also ``postgres://``; any libpq URL
        parameter).  Any other scheme raises a ``state-url`` diagnostic; an
        unreachable PostgreSQL server or refused login a ``state-connect`` one.
        """
        backend = open_backend(url, base)
        if isinstance(backend, SQLiteBackend):
            try:
                backend.prepare()
            except OSError as exc:
                raise error(
                    "state-open",
                    f"cannot create the state database {backend.path}: {exc.strerror or exc}",
                    hint="check the directory's permissions or choose another place with --state",
                ) from exc
        store = cls(backend, clock=clock)
        try:
            store._init_schema()
        except DiagnosticError as exc:
            store.close()
            if exc.diagnostics[0].code == "state-corrupt":  # not a (readable) database
                raise error(
                    "state-open",
                    f"cannot open the state database {backend.description}: "
                    f"{exc.diagnostics[0].message.rpartition(': ')[2]}",
                    hint="is it a cloudtmpl state file? State is only a cache: moving a broken "
                    "file aside is safe, the next plan rediscovers the stack from the cloud",
                ) from None
            raise
        except Exception as exc:
            store.close()
            if isinstance(backend, PostgresBackend) and backend.is_error(exc):
                raise error(
                    "state-open",
                    f"cannot use the state database {backend.description}: "
                    f"{backend.redact(str(exc).strip())}",
                    hint="the user needs to create tables in that database (or they must "
                    "exist); is it a cloudtmpl state database?",
                ) from None
            raise
        return store

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ stacks

    def stacks(self) -> list[str]:
        """Stacks that have resources or outputs (a forgotten stack is not listed)."""
        return [s.name for s in self.stack_summaries() if s.resources or s.outputs]

    def stack_summaries(self) -> list[StackSummary]:
        """Every stack with resources, outputs or a lock: serial, counts, lock holder."""
        with self._read() as tx:
            rows = tx.all(
                "SELECT s.name, s.serial, s.updated, "
                "(SELECT COUNT(*) FROM resources r WHERE r.stack = s.name), "
                "(SELECT COUNT(*) FROM outputs o WHERE o.stack = s.name) "
                "FROM stacks s ORDER BY s.name"
            )
            locks = tx.all(f"SELECT stack, {LOCK_COLUMNS} FROM locks")
        held = {r[0]: lock_from_row(r[0], r[1:]) for r in locks}
        out: dict[str, StackSummary] = {}
        for name, serial, updated, n_res, n_out in rows:
            if n_res or n_out or name in held:
                out[name] = StackSummary(
                    name, int(serial), int(n_res), int(n_out), dt(updated), held.get(name)
                )
        for name, info in held.items():
            if name not in out:
                out[name] = StackSummary(name, 0, 0, 0, None, info)
        return [out[name] for name in sorted(out)]

    def serial(self, stack: str) -> int:
        """The stack's change counter: 0 for a new stack, +1 per resource write."""
        with self._read() as tx:
            row = tx.one("SELECT serial FROM stacks WHERE name = ?", (stack,))
        return int(row[0]) if row else 0

    def applied_plan(self, stack: str) -> str | None:
        """The id of the last plan file applied to the stack (see ``set_applied_plan``)."""
        with self._read() as tx:
            row = tx.one("SELECT applied_plan FROM stacks WHERE name = ?", (stack,))
        return row[0] if row else None

    def set_applied_plan(self, stack: str, plan_id: str) -> None:
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("UPDATE stacks SET applied_plan = ? WHERE name = ?", (plan_id, stack))

    # ------------------------------------------------------------ resources, outputs

    def resources(self, stack: str) -> dict[str, ResourceRecord]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT address, kind, target, region, physical_id, name, spec, spec_hash, "
                "attributes FROM resources WHERE stack = ? ORDER BY address",
                (stack,),
            )
        return {
            r[0]: ResourceRecord(
                address=r[0],
                kind=r[1],
                target=r[2],
                region=r[3],
                physical_id=r[4],
                name=r[5],
                spec=json.loads(r[6]),
                spec_hash=r[7],
                attributes=json.loads(r[8]),
            )
            for r in rows
        }

    def put_resource(self, stack: str, rec: ResourceRecord) -> None:
        """Insert or replace ``rec`` and bump the stack's serial."""
        spec = dump(dict(rec.spec), f"the spec of {rec.address}")
        attributes = dump(dict(rec.attributes), f"the attributes of {rec.address}")
        now = self._now()
        with self._write(stack) as tx:
            tx.run(
                "INSERT INTO resources (stack, address, kind, target, region, physical_id, "
                "name, spec, spec_hash, attributes, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (stack, address) DO UPDATE SET kind = excluded.kind, "
                "target = excluded.target, region = excluded.region, "
                "physical_id = excluded.physical_id, name = excluded.name, "
                "spec = excluded.spec, spec_hash = excluded.spec_hash, "
                "attributes = excluded.attributes, updated = excluded.updated",
                (stack, rec.address, rec.kind, rec.target, rec.region, rec.physical_id,
                 rec.name, spec, rec.spec_hash, attributes, now),
            )
            self._bump(tx, stack, now)

    def delete_resource(self, stack: str, address: str) -> bool:
        """Remove a resource; bumps the serial.  False if there was nothing to remove."""
        now = self._now()
        with self._write(stack) as tx:
            n = tx.run("DELETE FROM resources WHERE stack = ? AND address = ?", (stack, address))
            if n:
                self._bump(tx, stack, now)
        return n > 0

    def outputs(self, stack: str) -> dict[str, Any]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT name, value FROM outputs WHERE stack = ? ORDER BY position, name", (stack,)
            )
        return {name: json.loads(value) for name, value in rows}

    def set_outputs(self, stack: str, outputs: Mapping[str, Any]) -> None:
        """Replace all of the stack's outputs (values must be plain JSON data), keeping
        their order (the template's)."""
        dumped = [(str(k), dump(v, f"output '{k}'")) for k, v in outputs.items()]
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("DELETE FROM outputs WHERE stack = ?", (stack,))
            for position, (name, value) in enumerate(dumped):
                tx.run(
                    "INSERT INTO outputs (stack, name, value, position) VALUES (?, ?, ?, ?)",
                    (stack, name, value, position),
                )
            tx.run("UPDATE stacks SET updated = ? WHERE name = ?", (now, stack))

    # ------------------------------------------------------------ parameters, template

    def parameter_digests(self, stack: str) -> dict[str, str]:
        """Digests of the values ``immutable`` parameters had at the last apply."""
        with self._read() as tx:
            rows = tx.all("SELECT name, digest FROM parameters WHERE stack = ?", (stack,))
        return {name: digest for name, digest in rows}

    def set_parameter_digests(self, stack: str, digests: Mapping[str, str]) -> None:
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("DELETE FROM parameters WHERE stack = ?", (stack,))
            for name, digest in sorted(digests.items()):
                tx.run("INSERT INTO parameters (stack, name, digest) VALUES (?, ?, ?)",
                       (stack, name, digest))

    def template(self, stack: str) -> str | None:
        """The template file the stack was last applied from (relative to the project
        directory, POSIX form); None if not known (a new stack, or written before
        schema 3)."""
        with self._read() as tx:
            row = tx.one("SELECT template FROM stacks WHERE name = ?", (stack,))
        return None if row is None or row[0] is None else str(row[0])

    def set_template(self, stack: str, template: str) -> None:
        """Record the template file the stack is applied from (does not bump the serial)."""
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run("UPDATE stacks SET template = ?, updated = ? WHERE name = ?",
                   (template, now, stack))

    def forget_stack(self, stack: str, *, who: str = "cloudtmpl") -> None:
        """Drop the stack's resources, outputs and template (after a destroy).

        Runs, journal and audit are kept; the serial keeps counting (it is bumped),
        so a plan made before the destroy can never look current afterwards.
        """
        now = self._now()
        with self._write(stack) as tx:
            n = tx.run("DELETE FROM resources WHERE stack = ?", (stack,))
            tx.run("DELETE FROM outputs WHERE stack = ?", (stack,))
            tx.run("DELETE FROM parameters WHERE stack = ?", (stack,))
            tx.run("DELETE FROM scaling_groups WHERE stack = ?", (stack,))
            self._bump(tx, stack, now)
            tx.run("UPDATE stacks SET template = NULL WHERE name = ?", (stack,))
            self._audit(tx, stack, who, f"forgot stack ({n} resource records removed)", now)
