"""What a resource's ``deletion_policy`` does when it is deleted or replaced.

``Delete`` deletes it; ``Retain`` keeps it in the cloud, no longer managed; ``Snapshot``
takes a copy first where the kind and cloud can (a volume's snapshot or backup, an
OpenStack server's Glance image) and otherwise keeps it, as ``Retain`` does (Heat
would save an image of a server on any cloud).  The planner asks :func:`snapshots`;
a replace that would delete a resource the template keeps is refused
(:func:`retained_replace_refused`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl import capabilities, resources
from cloudtmpl.catalog import Catalog
from cloudtmpl.diagnostics import Diagnostic
from cloudtmpl.model import DesiredResource, Placement


def retained_replace_refused(res: DesiredResource, policy: str, why: str) -> Diagnostic:
    """A replace would delete the old copy of a resource the template says to keep
    (Retain; Snapshot on a kind cloudtmpl cannot snapshot, which it keeps instead).

    Heat abandons the old resource; here a resource's identity is its address (its
    tags, or its name), so the old copy could not stay beside the new one without being
    found again as a duplicate and deleted: the plan stops instead."""
    return Diagnostic(
        "retained-replace",
        f"resource '{res.address}' has deletion_policy {policy}, but this change replaces "
        f"it ({why}), which would delete the old one",
        res.loc,
        "undo the change that forces the replacement, or set deletion_policy: Delete "
        "for this run" + (" (or Snapshot: a volume is snapshotted first)"
                          if policy == "Retain" else ""),
    )


def snapshots(kind: str, *policies: Any, cloud: str | None = None) -> bool:
    """Whether deleting a ``kind`` under any of ``policies`` takes a snapshot first: a
    volume's snapshot; a server's image where the ``cloud`` (a provider type) makes
    one (:attr:`cloudtmpl.capabilities.Capabilities.images`; elsewhere it is kept)."""
    rtype = resources.TYPES.get(kind)
    if rtype is None or "Snapshot" not in policies:
        return False
    if rtype.on_snapshot == "retain" and kind == resources.SERVER.kind:
        found = capabilities.CLOUDS.get(cloud or "")
        return found is not None and found.images
    return rtype.on_snapshot == "snapshot"


def cloud_of(placement: Placement, catalogs: Mapping[str, Catalog] | None) -> str | None:
    """The provider type of ``placement``'s target, when its catalog is known."""
    catalog = (catalogs or {}).get(placement.target)
    return catalog.type if catalog is not None else None
