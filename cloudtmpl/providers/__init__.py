"""Provider adapters: one per cloud family, the only code that touches libcloud."""

from __future__ import annotations

from cloudtmpl.model import Target
from cloudtmpl.providers.base import Adapter


def make_adapter(target: Target) -> Adapter:
    """The adapter for a provider target (imports the family's module lazily)."""
    if target.type == "aws":
        from cloudtmpl.providers.aws import AwsAdapter

        return AwsAdapter(target)
    if target.type == "openstack":
        from cloudtmpl.providers.openstack import OpenStackAdapter

        return OpenStackAdapter(target)
    if target.type == "libcloud":
        from cloudtmpl.providers.libcloud import GenericAdapter

        return GenericAdapter(target)
    raise ValueError(f"no adapter for provider type {target.type!r}")
