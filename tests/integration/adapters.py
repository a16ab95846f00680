"""The adapters against the sandbox clouds, for the tests that drive them directly:
how to make one (AWS, OpenStack, a ``type: libcloud`` target on the sandbox's
file-backed driver), the sandboxes' control routes, and the verbs with a test's
defaults (stack ``web``, a timeout)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloudtmpl import config
from cloudtmpl.model import LiveResource, Target
from cloudtmpl.providers.aws import AwsAdapter
from cloudtmpl.providers.libcloud import GenericAdapter
from cloudtmpl.providers.openstack import OpenStackAdapter
from cloudtmpl_sandbox import control

STACK = "web"
TIMEOUT = 60.0
AWS_REGION = "us-east-1"
OPENSTACK_REGION = "de-fra-1"
LAB_REGION = "lab-de"
LAB_TOKEN = "lab-token"

# a ``type: libcloud`` target on the sandbox's file-backed driver (cloudtmpl_sandbox.filecloud)
LAB_PROJECT = """\
providers:
  lab:
    type: libcloud
    driver: filecloud
    key_env: FILECLOUD_TOKEN
    regions:
      lab-de: {country: DE, jurisdiction: EU}
      lab-nl: {country: NL, jurisdiction: EU}
default_target: lab
"""


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


def lab_env(directory: Path, **extra: str) -> dict[str, str]:
    """The environment of the lab target: its token, its cloud's file in ``directory``."""
    return {"FILECLOUD_TOKEN": LAB_TOKEN,
            "CLOUDTMPL_FILECLOUD_PATH": str(directory / "filecloud.json"), **extra}


def libcloud(directory: Path, **kwargs: Any) -> GenericAdapter:
    """The libcloud adapter of LAB_PROJECT's target ``lab``, as ``cloudtmpl.yaml`` in
    ``directory`` makes it (the driver's file cloud is ``directory``/filecloud.json)."""
    cloud = directory / "filecloud.json"
    (directory / config.PROJECT_FILE).write_text(LAB_PROJECT.replace(
        "    key_env: FILECLOUD_TOKEN\n",
        f"    key_env: FILECLOUD_TOKEN\n    args: {{path: '{cloud}'}}\n"))
    target = config.load_project(directory).targets["lab"]
    return GenericAdapter(target, environ={"FILECLOUD_TOKEN": LAB_TOKEN}, **kwargs)


def control_endpoint(info: dict[str, Any]) -> str:
    """The control routes' endpoint of a sandbox's status dict (AWS or OpenStack)."""
    return str(info.get("endpoint") or info["auth_url"].rsplit("/identity", 1)[0])


def admin(info: dict[str, Any], path: str, data: dict[str, Any] | None = None) -> Any:
    """``GET /_sandbox/<path>`` (``POST`` with ``data``) on a sandbox; its JSON answer."""
    status, answer = control.call(control_endpoint(info), info["token"],
                                  "GET" if data is None else "POST", f"/_sandbox/{path}", data)
    assert status == 200, answer
    return answer


def sandbox_requests(info: dict[str, Any]) -> int:
    """API requests the sandbox has answered since its last reset (its own counter)."""
    return int(admin(info, "requests")["total"])


def public_key() -> str:
    """A fresh OpenSSH public key."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + " test@cloudtmpl"


def by_address(items: Iterable[LiveResource]) -> dict[tuple[str, str], LiveResource]:
    return {(r.kind, r.address): r for r in items}


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
