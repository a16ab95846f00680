"""The values the state store hands out, its errors, and how values are written to rows.

Every value is a frozen dataclass.  Timestamps are stored as ISO 8601 text in
UTC (:func:`ts`, :func:`dt`); JSON columns hold plain JSON only (:func:`dump`
refuses NaN, infinity and anything else JSON cannot hold, with a
``state-value`` diagnostic).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError
from cloudtmpl.model import LiveResource, spec_hash

Operation = Literal["apply", "destroy"]
RunStatus = Literal["running", "succeeded", "failed", "interrupted"]
Phase = Literal["intent", "done", "failed"]

OPERATIONS = ("apply", "destroy")
END_STATUSES = ("succeeded", "failed", "interrupted")
PHASES = ("intent", "done", "failed")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ResourceRecord:
    """What the last apply did to one resource (a cache of the cloud, not the truth)."""

    address: str
    kind: str
    target: str
    region: str
    physical_id: str
    name: str
    spec: Mapping[str, Any] = field(default_factory=dict)  # resolved, redacted properties
    spec_hash: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_live(live: LiveResource, spec: Mapping[str, Any]) -> ResourceRecord:
        """A record for ``live`` after it was made to match ``spec``."""
        return ResourceRecord(
            address=live.address,
            kind=live.kind,
            target=live.placement.target,
            region=live.placement.region,
            physical_id=live.physical_id,
            name=live.name,
            spec=spec,
            spec_hash=spec_hash(spec),
            attributes=live.attributes,
        )


@dataclass(frozen=True)
class JournalEntry:
    run_id: int
    seq: int
    address: str
    action: str
    phase: Phase
    physical_id: str | None
    detail: Mapping[str, Any] | None
    at: datetime


@dataclass(frozen=True)
class RunInfo:
    id: int
    stack: str
    operation: Operation
    holder: str
    started: datetime
    finished: datetime | None
    status: RunStatus


@dataclass(frozen=True)
class LockInfo:
    stack: str
    holder: str
    pid: int
    host: str
    acquired: datetime
    generation: int = 0  # the fencing token (0: a record written before schema 4)

    def describe(self) -> str:
        since = self.acquired.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.holder} (pid {self.pid} on host {self.host}) since {since}"


@dataclass(frozen=True)
class StackSummary:
    """One line of ``cloudtmpl state list``."""

    name: str
    serial: int
    resources: int
    outputs: int
    updated: datetime | None
    lock: LockInfo | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    stack: str
    who: str
    what: str


# --------------------------------------------------------------------------- errors


class StateError(Exception):
    """The store was used wrongly (a programming error, not a user error)."""


class StateValueError(StateError, DiagnosticError):
    """A value that the state cannot hold (not plain JSON): a ``state-value`` diagnostic."""


class StackLocked(Exception):
    """Another live process holds the stack's lock.  ``info`` says who and since when.

    ``str(exc)`` names the holder, its pid and host and since when it holds the
    lock; :meth:`diagnostic` turns it into a ``stack-locked`` diagnostic.
    """

    CODE = "stack-locked"

    def __init__(self, info: LockInfo) -> None:
        self.info = info
        super().__init__(f"stack '{info.stack}' is locked by {info.describe()}")

    def diagnostic(self, hint: str = "") -> Diagnostic:
        return Diagnostic(
            self.CODE,
            str(self),
            hint=hint
            or "wait for that run to finish; if its process is certainly gone (e.g. it ran "
            "on another machine), force-unlock the stack",
        )


class LockLost(Exception):
    """This process no longer holds the stack's lock: another run took it over, or it
    was force-removed.  Nothing more is written for the stack; :meth:`diagnostic`
    gives the ``lock-lost`` diagnostic."""

    CODE = "lock-lost"

    def __init__(self, stack: str, why: str) -> None:
        self.stack = stack
        self.why = why
        super().__init__(f"lost the lock of stack '{stack}': {why}")

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(
            self.CODE,
            f"{self}; stopped: no new step started and nothing more written to the state",
            hint="another run owns the stack now (or the lock was force-removed); steps "
            "already in flight may have finished in the cloud without a state record - the "
            "next plan finds them by their tags. Run `cloudtmpl plan` once the other run "
            "has ended",
        )


# --------------------------------------------------------------------------- rows

LOCK_COLUMNS = "holder, pid, host, acquired, generation"


def ts(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def lock_from_row(stack: str, row: tuple[Any, ...]) -> LockInfo:
    """A ``locks`` row (:data:`LOCK_COLUMNS`) as a LockInfo."""
    return LockInfo(stack, row[0], int(row[1]), row[2], dt(row[3]), int(row[4]))


def dump(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateValueError([Diagnostic(
            "state-value", f"{what} cannot be stored: it is not plain JSON data ({exc})",
            hint="the state holds JSON values only: no NaN or infinity (a YAML .nan or "
            ".inf), no binary data; change the value in the template")]) from None
