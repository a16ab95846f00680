"""What a provider keeps of a cloud that the cloud cannot say itself.

A libcloud cloud has no tags on volume attachments, so which attachment (address)
joins a volume and a node is a record the provider keeps
(:mod:`cloudtmpl.providers.libcloud.records`).  Such records live here, in the
store, so that a team's state on PostgreSQL holds them as it holds everything else:
per target and namespace, key -> a JSON value (``provider_records``).

They describe the cloud, not a stack's state: they are not fenced by any stack's
lock (a cloud call of a run whose lock was lost is not undone either), and writing
them does not bump a serial.  Writers of one target's records queue on each other
(a key of their own, ``#records:<target>``), so a read-modify-write
(:meth:`ProviderRecords.amend_provider_record`) is safe across processes and
machines; reading takes no lock at all, so a plan reads them in a read transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cloudtmpl.state.core import StoreCore
from cloudtmpl.state.records import dump


def _key(target: str) -> str:
    """The writers' serialization key of a target's records (not a stack name)."""
    return f"#records:{target}"


class ProviderRecords(StoreCore):
    """The store's provider records (see the module docstring)."""

    def provider_records(self, target: str, namespace: str) -> dict[str, Any]:
        """The target's records in ``namespace``, by key (a read: no lock is taken)."""
        with self._read() as tx:
            rows = tx.all(
                "SELECT key, value FROM provider_records WHERE target = ? AND namespace = ? "
                "ORDER BY key",
                (target, namespace),
            )
        return {key: json.loads(value) for key, value in rows}

    def put_provider_record(self, target: str, namespace: str, key: str, value: Any) -> None:
        """Insert or replace one record (committed when this returns)."""
        text = dump(value, f"the {namespace} record {key!r} of target {target!r}")
        now = self._now()
        with self._write(_key(target), fenced=False) as tx:
            tx.run(
                "INSERT INTO provider_records (target, namespace, key, value, updated) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, namespace, key) "
                "DO UPDATE SET value = excluded.value, updated = excluded.updated",
                (target, namespace, key, text, now),
            )

    def amend_provider_record(self, target: str, namespace: str, key: str,
                              fields: Mapping[str, Any]) -> bool:
        """Set ``fields`` in the record (a JSON object) in one write transaction; False
        (and nothing written) if there is no such record."""
        now = self._now()
        with self._write(_key(target), fenced=False) as tx:
            row = tx.one(
                "SELECT value FROM provider_records WHERE target = ? AND namespace = ? "
                "AND key = ?",
                (target, namespace, key),
            )
            if row is None:
                return False
            value = {**json.loads(row[0]), **fields}
            tx.run(
                "UPDATE provider_records SET value = ?, updated = ? "
                "WHERE target = ? AND namespace = ? AND key = ?",
                (dump(value, f"the {namespace} record {key!r} of target {target!r}"), now,
                 target, namespace, key),
            )
        return True

    def forget_provider_record(self, target: str, namespace: str, key: str) -> bool:
        """Remove one record; False if there was none."""
        with self._write(_key(target), fenced=False) as tx:
            n = tx.run(
                "DELETE FROM provider_records WHERE target = ? AND namespace = ? AND key = ?",
                (target, namespace, key),
            )
        return n > 0

    def import_provider_records(
        self,
        target: str,
        namespace: str,
        records: Mapping[str, Any],
        *,
        stacks: Iterable[str],
        what: str,
        who: str = "cloudtmpl",
    ) -> int:
        """Add ``records`` kept elsewhere until now, in one transaction, with the audit
        line ``what`` for each of ``stacks``; a record the store already has is newer
        and is kept.  Returns how many were added."""
        dumped = [(str(k), dump(v, f"the {namespace} record {k!r} of target {target!r}"))
                  for k, v in sorted(records.items())]
        now = self._now()
        added = 0
        with self._write(_key(target), fenced=False) as tx:
            for key, text in dumped:
                added += tx.run(
                    "INSERT INTO provider_records (target, namespace, key, value, updated) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, namespace, key) DO NOTHING",
                    (target, namespace, key, text, now),
                )
            for stack in sorted(set(stacks)):
                self._audit(tx, stack, who, what, now)
        return added
