"""The sizes of a stack's scaling groups (``OS::Heat::AutoScalingGroup``), kept as
state: a group's size is not its template's (a ``cloudtmpl signal`` changes it),
so the store keeps, per stack and group, the size it is at, the digest of the
group's definition that size was recorded with (:func:`cloudtmpl.scaling.size_now`
compares it), when each cooldown ends (the group's own and each policy's that
scaled it), and the member indexes scaled in (the oldest go first, as in Heat, and
an index is never used again).

A record is written before the members it asks for are made (a signal records the
new size, then applies it; an apply records the size it plans), so a run killed
half way leaves the size it was going to: the next ``apply`` finishes it.  Writes
are fenced by the stack's lock like every other write of the stack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from cloudtmpl.state.core import StoreCore
from cloudtmpl.state.records import dump


@dataclass(frozen=True)
class GroupRecord:
    """A scaling group's recorded size; ``cooldowns`` maps the group or a policy
    (its address) to the ISO time its cooldown ends."""

    group: str
    size: int
    definition: str  # digest of the group's definition the size was recorded with
    cooldowns: Mapping[str, str] = field(default_factory=dict)
    removed: tuple[int, ...] = ()  # member indexes scaled in (never reused)


class ScalingGroups(StoreCore):
    """The store's scaling-group records (see the module docstring)."""

    def scaling_groups(self, stack: str) -> dict[str, GroupRecord]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT grp, size, definition, cooldowns, removed FROM scaling_groups "
                "WHERE stack = ? ORDER BY grp", (stack,))
        return {g: GroupRecord(g, int(size), str(definition), json.loads(cooldowns),
                               tuple(json.loads(removed)))
                for g, size, definition, cooldowns, removed in rows}

    def put_scaling_group(self, stack: str, rec: GroupRecord) -> None:
        """Insert or replace the group's record (committed when this returns)."""
        cooldowns = dump(dict(rec.cooldowns), f"the cooldowns of group {rec.group}")
        removed = dump(sorted(rec.removed), f"the members scaled in of group {rec.group}")
        now = self._now()
        with self._write(stack) as tx:
            self._ensure_stack(tx, stack, now)
            tx.run(
                "INSERT INTO scaling_groups (stack, grp, size, definition, cooldowns, "
                "removed, updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (stack, grp) "
                "DO UPDATE SET size = excluded.size, definition = excluded.definition, "
                "cooldowns = excluded.cooldowns, removed = excluded.removed, "
                "updated = excluded.updated",
                (stack, rec.group, rec.size, rec.definition, cooldowns, removed, now),
            )

    def forget_scaling_group(self, stack: str, group: str) -> bool:
        with self._write(stack) as tx:
            n = tx.run("DELETE FROM scaling_groups WHERE stack = ? AND grp = ?", (stack, group))
        return n > 0
