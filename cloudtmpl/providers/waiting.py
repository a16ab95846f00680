"""A wait condition's signals: what a signal says (Heat's format and CloudFormation's),
how several of them count, and the wait itself - the same on every cloud; the cloud
modules only read the signal object's versions (:mod:`.openstack.signals`,
:mod:`.aws.signals`).

A signal is the body of one ``PUT`` to the handle's URL, JSON:

* Heat's: ``{"status": "SUCCESS"|"FAILURE", "reason": ..., "data": ..., "id": ...}``,
  every key optional: no status is SUCCESS, no id is the signal's number (1, 2, ...
  in the order they arrived), no reason is ``Signal <id> received``; an empty body is
  ``{}``;
* CloudFormation's: ``{"Status": ..., "Reason": ..., "UniqueId": ..., "Data": ...}``.

A signal whose id was seen before replaces the earlier one (a server that signals
twice counts once), as Heat does.  Any FAILURE fails the condition with its reasons;
``count`` SUCCESS signals satisfy it; its ``data`` is ``{id: data}`` (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudtmpl.orchestration_kinds import MAX_COUNT, MAX_TIMEOUT
from cloudtmpl.providers.base import CloudError, ResourceTimeout, poll

SUCCESS, FAILURE = "SUCCESS", "FAILURE"
_CFN = {"Status": "status", "Reason": "reason", "UniqueId": "id", "Data": "data"}


@dataclass(frozen=True)
class Signal:
    id: str
    status: str
    reason: str
    data: Any


@dataclass(frozen=True)
class Wanted:
    """A condition's ``count`` and ``timeout``, checked as Heat checks them."""

    count: int
    timeout: float

    @staticmethod
    def of(properties: Mapping[str, Any]) -> Wanted:
        try:
            count = properties.get("count")
            timeout = properties.get("timeout")
            count = int(1 if count is None else count)
            timeout = float(3600 if timeout is None else timeout)
        except (TypeError, ValueError):
            raise CloudError("count must be an integer and timeout a number of seconds",
                             permanent=True) from None
        if not 1 <= count <= MAX_COUNT:
            raise CloudError(f"count must be from 1 to {MAX_COUNT} (got {count})",
                             permanent=True)
        if not 1 <= timeout <= MAX_TIMEOUT:
            raise CloudError(f"timeout must be from 1 to {MAX_TIMEOUT} seconds (got "
                             f"{timeout:g})", permanent=True)
        return Wanted(count, timeout)


def parse(bodies: Iterable[bytes]) -> list[Signal]:
    """The signals of the signal object's versions (oldest first), a repeated id
    replacing the earlier signal.  A body that is not a JSON object is refused."""
    out: list[Signal] = []
    for number, body in enumerate(bodies, start=1):
        text = body.decode("utf-8", "replace").strip()
        try:
            raw = json.loads(text) if text else {}
        except ValueError:
            raw = None
        if not isinstance(raw, dict):
            raise CloudError(f"signal {number} is not a JSON object: {text[:80]!r}",
                             permanent=True)
        if any(k in raw for k in _CFN):  # CloudFormation's form
            raw = {_CFN.get(k, k): v for k, v in raw.items()}
        sid = str(raw.get("id") if raw.get("id") is not None else number)
        status = str(raw.get("status") or SUCCESS).upper()
        reason = str(raw.get("reason") or f"Signal {sid} received")
        out = [s for s in out if s.id != sid]
        out.append(Signal(sid, status, reason, raw.get("data")))
    return out


def data_of(signals: Iterable[Signal]) -> dict[str, Any]:
    """The condition's ``data``: Heat's ``{id: data}`` (a JSON attribute: get_attr may
    select one id's data, ``{get_attr: [wait_condition, data, '4']}``)."""
    return {s.id: s.data for s in signals}


def outcome(signals: list[Signal], count: int) -> bool:
    """True once ``count`` SUCCESS signals arrived; a FAILURE (or an unknown status)
    raises with the reasons."""
    failed = [s.reason for s in signals if s.status == FAILURE]
    if failed:
        raise CloudError(f"a FAILURE signal arrived: {'; '.join(failed)}", permanent=True)
    unknown = sorted({s.status for s in signals if s.status != SUCCESS})
    if unknown:
        raise CloudError(f"unknown signal status {', '.join(unknown)} (SUCCESS or FAILURE)",
                         permanent=True)
    return len(signals) >= count


def wait(read: Callable[[], list[bytes]], wanted: Wanted, handle: str, *,
         clock: Callable[[], float], sleep: Callable[[float], None],
         max_interval: float = 3.0) -> list[Signal]:
    """Poll ``read`` (the bodies of the signal object's versions, oldest first) at a
    growing interval until ``wanted.count`` SUCCESS signals arrived; raise on a FAILURE
    and at the timeout, naming ``handle`` and how many signals of how many arrived."""
    seen: list[Signal] = []

    def fetch() -> tuple[bool, str, list[Signal]]:
        nonlocal seen
        seen = parse(read())
        return outcome(seen, wanted.count), f"{len(seen)} of {wanted.count}", seen

    try:
        return poll(wanted.timeout, handle, fetch, clock=clock, sleep=sleep,
                    first=0.2, max_interval=max_interval)
    except ResourceTimeout:
        reasons = "; ".join(s.reason for s in seen)
        raise CloudError(
            f"timed out after {wanted.timeout:g} s waiting for {handle}: {len(seen)} of "
            f"{wanted.count} signals received" + (f" ({reasons})" if reasons else ""),
            permanent=True) from None
