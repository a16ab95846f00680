"""Which attachment joins a volume and a node: libcloud has no tags to say it.

The records are kept in ``.cloudtmpl/libcloud/<target>.json`` in the project, under a
lock shared across processes, written before ``attach_volume``: a lost record only
makes the next plan show the attachment as a create, which apply then adopts (the
volume is already attached).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cloudtmpl.providers.base import CloudError


class AttachmentRecords:
    """One target's attachment records, by volume id."""

    def __init__(self, path: Path | None, what: str) -> None:
        self.path = path
        self.what = what

    @contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        """The records, locked across processes; changes to the dict are written back."""
        if self.path is None:
            raise CloudError(f"{self.what}: volume attachments need a project directory "
                             "(a cloudtmpl.yaml) to record them in", permanent=True)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = {}
                records = data.setdefault("attachments", {})
                before = json.dumps(data, sort_keys=True)
                yield records
                if json.dumps(data, sort_keys=True) != before:
                    tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
                    os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def all(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        with self.editing() as records:
            return dict(records)

    def put(self, volume_id: str, record: dict[str, Any]) -> None:
        with self.editing() as records:
            records[volume_id] = record

    def forget(self, volume_id: str) -> None:
        with self.editing() as records:
            records.pop(volume_id, None)
