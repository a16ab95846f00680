"""The adapters against the sandbox clouds, for the tests that drive them directly:
how to make one, and the verbs with a test's defaults (stack ``web``, a timeout)."""

from __future__ import annotations

from typing import Any

from cloudtmpl.model import LiveResource, Target
from cloudtmpl.providers.aws import AwsAdapter
from cloudtmpl.providers.openstack import OpenStackAdapter

STACK = "web"
TIMEOUT = 60.0
AWS_REGION = "us-east-1"
OPENSTACK_REGION = "de-fra-1"


def aws(info: dict[str, Any], **kwargs: Any) -> AwsAdapter:
    """The AWS adapter on the AWS sandbox ``info`` (its status dict)."""
    target = Target(name="sandbox-aws", type="aws", region=AWS_REGION,
                    options={"endpoint": info["endpoint"], "access_key": info["access_key"],
                             "secret_key": info["secret_key"]}, sandbox=True)
    return AwsAdapter(target, **kwargs)


def openstack_target(info: dict[str, Any], **override: Any) -> Target:
    options = {k: info[k] for k in ("auth_url", "username", "password", "project_name",
                                    "user_domain_name", "project_domain_name")}
    options.update(override)
    return Target(name="sandbox-openstack", type="openstack", region=OPENSTACK_REGION,
                  options=options, sandbox=True)


def openstack(info: dict[str, Any], **kwargs: Any) -> OpenStackAdapter:
    """The OpenStack adapter on the OpenStack sandbox ``info``."""
    return OpenStackAdapter(openstack_target(info), **kwargs)


class Counted:
    """Requests an adapter made inside a ``with`` block (``.n``)."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.n = 0

    def __enter__(self) -> Counted:
        self.start = self.adapter.request_count()
        return self

    def __exit__(self, *exc: object) -> None:
        self.n = self.adapter.request_count() - self.start


def create(adapter: Any, region: str, kind: str, address: str, props: dict[str, Any],
           *, stack: str = STACK, spec: str = "spec-1") -> LiveResource:
    live: LiveResource = adapter.create(region, kind, stack=stack, address=address,
                                        name=f"{stack}.{address}", properties=props,
                                        spec_hash=spec, timeout=TIMEOUT)
    return live


def update(adapter: Any, live: LiveResource, props: dict[str, Any], changed: set[str],
           spec: str, *, stack: str = STACK) -> LiveResource:
    done: LiveResource = adapter.update(live, props, frozenset(changed), stack=stack,
                                        spec_hash=spec, timeout=TIMEOUT)
    return done
