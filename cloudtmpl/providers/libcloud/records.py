"""Which attachment joins a volume and a node: libcloud has no tags to say it.

The records are kept in the state store (namespace ``attachments`` of the target's
provider records, :mod:`cloudtmpl.state.provider_records`), so that a team's state on
PostgreSQL holds them as it holds everything else.  Each write is a transaction of
its own, committed before it returns, and writers of a target's records queue on
each other, in other processes and on other machines too.  The record is written
before ``attach_volume``: a lost record only makes the next plan show the attachment
as a create, which apply then adopts (the volume is already attached).  Reading
them (discovery, a plan) takes no lock.

The adapter is given the store by whoever opened both (:mod:`cloudtmpl.session`);
without one, discovery finds no attachment and recording one is refused.

An older cloudtmpl kept them in ``.cloudtmpl/libcloud/<target>.json`` in the project,
under an ``flock`` on ``<target>.lock``: on first use such a file is imported into the
store, under the same lock (a record the store already has is newer and is kept),
with an audit line for each stack it names, and renamed to
``<target>.json.imported``, so that it is imported once and nothing is lost.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from cloudtmpl.providers.base import CloudError

NAMESPACE = "attachments"


class RecordStore(Protocol):
    """The provider records of the state store (:class:`cloudtmpl.state.StateStore`)."""

    def provider_records(self, target: str, namespace: str) -> dict[str, Any]: ...
    def put_provider_record(self, target: str, namespace: str, key: str,
                            value: Any) -> None: ...
    def amend_provider_record(self, target: str, namespace: str, key: str,
                              fields: Mapping[str, Any]) -> bool: ...
    def forget_provider_record(self, target: str, namespace: str, key: str) -> bool: ...
    def import_provider_records(self, target: str, namespace: str,
                                records: Mapping[str, Any], *, stacks: Iterable[str],
                                what: str, who: str = ...) -> int: ...


class AttachmentRecords:
    """One target's attachment records, by volume id."""

    def __init__(self, store: RecordStore | None, target: str, what: str,
                 legacy: Path | None) -> None:
        self.store = store
        self.target = target
        self.what = what
        self.legacy = legacy  # an older cloudtmpl's file of them, imported on first use
        self._guard = threading.Lock()
        self._imported = False

    def _ready(self) -> RecordStore | None:
        """The store, once the legacy file (if any) is in it."""
        store = self.store
        if store is not None and not self._imported:
            with self._guard:
                if not self._imported:
                    if self.legacy is not None and self.legacy.exists():
                        _import(store, self.target, self.legacy)
                    self._imported = True
        return store

    def _writable(self) -> RecordStore:
        store = self._ready()
        if store is None:
            raise CloudError(f"{self.what}: volume attachments need the state store to "
                             "record them in", permanent=True)
        return store

    def all(self) -> dict[str, Any]:
        store = self._ready()
        return {} if store is None else store.provider_records(self.target, NAMESPACE)

    def put(self, volume_id: str, record: dict[str, Any]) -> None:
        self._writable().put_provider_record(self.target, NAMESPACE, volume_id, record)

    def amend(self, volume_id: str, fields: Mapping[str, Any]) -> None:
        """Set ``fields`` in the volume's record, if it has one."""
        self._writable().amend_provider_record(self.target, NAMESPACE, volume_id, fields)

    def forget(self, volume_id: str) -> None:
        self._writable().forget_provider_record(self.target, NAMESPACE, volume_id)


def _import(store: RecordStore, target: str, path: Path) -> None:
    """Move an older cloudtmpl's records file into the store (see the module docstring)."""
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return  # another process imported it meanwhile
            try:
                data = json.loads(text)
            except ValueError:
                data = {}  # the older cloudtmpl read such a file as empty too
            found = data.get("attachments") if isinstance(data, dict) else None
            records = found if isinstance(found, dict) else {}
            kept = path.with_name(path.name + ".imported")
            stacks = {r["stack"] for r in records.values()
                      if isinstance(r, dict) and isinstance(r.get("stack"), str)}
            store.import_provider_records(
                target, NAMESPACE, records, stacks=stacks,
                what=f"imported {len(records)} libcloud attachment records of target "
                f"{target!r} from {path} into the state (the file is kept as {kept.name})")
            os.replace(path, kept)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
