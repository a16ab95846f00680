"""Runs, the step journal, open intents and the audit trail.

Each apply/destroy is a run; every step is written *before* it starts (phase
``intent``) and *after* it ends (``done`` or ``failed``).  Each journal call
commits before it returns, so after a kill at any instant
:meth:`RunJournal.open_intents` tells the next run which steps may be half-done
and must be looked up in the cloud before being retried.  The audit trail
records lock take-overs, forced unlocks and forgotten stacks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from cloudtmpl.state.core import StoreCore
from cloudtmpl.state.records import (
    END_STATUSES,
    OPERATIONS,
    PHASES,
    AuditEntry,
    JournalEntry,
    Operation,
    Phase,
    RunInfo,
    RunStatus,
    StateError,
    dt,
    dump,
)

_JOURNAL_COLUMNS = "j.run_id, j.seq, j.address, j.action, j.phase, j.physical_id, j.detail, j.at"


def _entry(r: tuple[Any, ...]) -> JournalEntry:
    return JournalEntry(
        int(r[0]), int(r[1]), r[2], r[3], r[4], r[5],
        None if r[6] is None else json.loads(r[6]), dt(r[7]),
    )


class RunJournal(StoreCore):
    """The store's runs, journal and audit methods (see the module docstring)."""

    def begin_run(self, stack: str, operation: Operation | str, holder: str) -> int:
        """Start a run; ``holder`` in this process must hold the stack's lock."""
        if operation not in OPERATIONS:
            raise StateError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")
        now = self._now()
        held = self._held.get(stack)
        if held is None or held[0] != holder:
            raise StateError(
                f"begin_run: {holder!r} does not hold the lock of stack '{stack}' "
                "(call acquire_lock or use lock() first)"
            )
        with self._write(stack) as tx:  # fenced: the lock is still ours
            self._ensure_stack(tx, stack, now)
            row = tx.one(
                "INSERT INTO runs (stack, operation, holder, started, finished, status) "
                "VALUES (?, ?, ?, ?, NULL, 'running') RETURNING id",
                (stack, operation, holder, now),
            )
        assert row is not None
        return int(row[0])

    def end_run(self, run_id: int, status: RunStatus | str) -> None:
        if status not in END_STATUSES:
            raise StateError(f"unknown run status {status!r}; expected one of {END_STATUSES}")
        now = self._now()
        with self._read() as tx:
            row = tx.one("SELECT stack FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise StateError(f"no run with id {run_id}")
        with self._write(row[0]) as tx:
            tx.run("UPDATE runs SET status = ?, finished = ? WHERE id = ?", (status, now, run_id))

    def runs(self, stack: str) -> list[RunInfo]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT id, stack, operation, holder, started, finished, status FROM runs "
                "WHERE stack = ? ORDER BY id",
                (stack,),
            )
        return [
            RunInfo(int(r[0]), r[1], r[2], r[3], dt(r[4]), dt(r[5]) if r[5] else None, r[6])
            for r in rows
        ]

    def journal(
        self,
        run_id: int,
        stack: str,
        address: str,
        action: str,
        phase: Phase | str,
        physical_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> JournalEntry:
        """Record one step; committed (durable) when this returns.

        Write ``intent`` before calling the cloud and ``done``/``failed`` after.
        ``seq`` is assigned by the store, increasing within the run.
        """
        if phase not in PHASES:
            raise StateError(f"unknown journal phase {phase!r}; expected one of {PHASES}")
        detail_text = (
            None if detail is None else dump(dict(detail), f"journal detail of {address}")
        )
        now = self._now()
        with self._write(stack) as tx:
            run = tx.one("SELECT stack FROM runs WHERE id = ?", (run_id,))
            if run is None:
                raise StateError(f"no run with id {run_id}")
            if run[0] != stack:
                raise StateError(f"run {run_id} belongs to stack '{run[0]}', not '{stack}'")
            seq_row = tx.one(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE run_id = ?", (run_id,)
            )
            assert seq_row is not None
            seq = int(seq_row[0])
            tx.run(
                "INSERT INTO journal (run_id, seq, stack, address, action, phase, physical_id, "
                "detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, stack, address, action, phase, physical_id, detail_text, now),
            )
        return JournalEntry(
            run_id, seq, address, action, cast(Phase, phase), physical_id,
            None if detail_text is None else json.loads(detail_text), dt(now),
        )

    def journal_entries(self, run_id: int) -> list[JournalEntry]:
        with self._read() as tx:
            rows = tx.all(
                f"SELECT {_JOURNAL_COLUMNS} FROM journal j WHERE j.run_id = ? ORDER BY j.seq",
                (run_id,),
            )
        return [_entry(r) for r in rows]

    def open_intents(self, stack: str, *, before_run: int | None = None) -> list[JournalEntry]:
        """Steps that were started but never finished: what a killed run may have half-done.

        An ``intent`` is open unless (a) its own run later recorded ``done`` or
        ``failed`` for the same address and action, or (b) a later run recorded
        ``done`` for the same address (any action - e.g. ``adopt`` after finding
        the resource, ``lookup`` after finding nothing, or a successful
        create/update/delete; a later *failed* step proves nothing and leaves
        the intent open).  With
        ``before_run``, only runs with a smaller id are considered (so a run in
        progress can ask about its predecessors).
        """
        sql = (
            f"SELECT {_JOURNAL_COLUMNS} FROM journal j "
            "WHERE j.stack = ? AND j.phase = 'intent' "
            "AND NOT EXISTS (SELECT 1 FROM journal d WHERE d.run_id = j.run_id "
            "  AND d.address = j.address AND d.action = j.action AND d.seq > j.seq "
            "  AND d.phase IN ('done', 'failed')) "
            "AND NOT EXISTS (SELECT 1 FROM journal l WHERE l.stack = j.stack "
            "  AND l.address = j.address AND l.run_id > j.run_id AND l.phase = 'done')"
        )
        params: list[Any] = [stack]
        if before_run is not None:
            sql += " AND j.run_id < ?"
            params.append(before_run)
        sql += " ORDER BY j.run_id, j.seq"
        with self._read() as tx:
            rows = tx.all(sql, params)
        return [_entry(r) for r in rows]

    # ------------------------------------------------------------ audit

    def audit_log(self, stack: str | None = None) -> list[AuditEntry]:
        """Audit lines, oldest first (all stacks, or one)."""
        sql = "SELECT at, stack, who, what FROM audit"
        params: tuple[Any, ...] = ()
        if stack is not None:
            sql += " WHERE stack = ?"
            params = (stack,)
        with self._read() as tx:
            rows = tx.all(sql + " ORDER BY id", params)
        return [AuditEntry(dt(r[0]), r[1], r[2], r[3]) for r in rows]
