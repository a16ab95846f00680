"""libcloud's EC2 driver against the AWS sandbox, and the sandbox catalog's images and sizes.

The images are looked up by the ``catalog_amis`` fixture (tests/integration/conftest.py);
``image`` takes that fixture's value as an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

REPO = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((REPO / "providers" / "sandbox-aws.yaml").read_text())


def ec2(info: dict[str, Any], region: str = "us-east-1", sigv4: bool = True) -> Any:
    """libcloud's EC2 driver for the AWS sandbox ``info`` (SigV4, or V2 when not ``sigv4``)."""
    host, port = info["endpoint"].removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1"
    kwargs: dict[str, Any] = {"signature_version": "4"} if sigv4 else {}
    cls = get_driver(Provider.EC2)
    return cls(
        info["access_key"],
        info["secret_key"],
        region=region,
        host=host,
        port=int(port),
        secure=False,
        **kwargs,
    )


def image(driver: Any, amis: Mapping[tuple[str, str], str], region: str = "us-east-1",
          name: str = "ubuntu-22.04") -> NodeImage:
    """The AMI the catalog's filter finds for ``name`` in ``region``: ``amis`` is the
    ``catalog_amis`` fixture's value (tests/integration/conftest.py)."""
    return NodeImage(amis[(region, name)], name, driver)


def size(driver: Any, abstract: str = "tiny") -> NodeSize:
    itype = CATALOG["sizes"][abstract]
    return NodeSize(itype, itype, 1024, 8, 0, 0.0, driver)
