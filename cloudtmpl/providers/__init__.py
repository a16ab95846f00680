"""Provider adapters: one per cloud family, the only code that touches libcloud."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudtmpl.model import Target
from cloudtmpl.providers.base import Adapter

if TYPE_CHECKING:
    from cloudtmpl.providers.libcloud.records import RecordStore


def make_adapter(target: Target, *, store: RecordStore | None = None) -> Adapter:
    """The adapter for a provider target (imports the family's module lazily).

    ``store`` keeps the records a cloud cannot hold itself (the libcloud attachment
    records): the state store the session opened."""
    if target.type == "aws":
        from cloudtmpl.providers.aws import AwsAdapter

        return AwsAdapter(target)
    if target.type == "openstack":
        from cloudtmpl.providers.openstack import OpenStackAdapter

        return OpenStackAdapter(target)
    if target.type == "libcloud":
        from cloudtmpl.providers.libcloud import GenericAdapter

        return GenericAdapter(target, store=store)
    raise ValueError(f"no adapter for provider type {target.type!r}")
