"""Fixtures for integration tests against the local sandbox clouds.

``sandboxes`` starts both sandbox clouds (AWS and OpenStack: ``manager.start``
starts them together) once per test session in a fresh ``CLOUDTMPL_SANDBOX_DIR``
and always stops them; ``aws_sandbox``/``openstack_sandbox`` are their status
dicts.  ``aws_reset``/``openstack_reset`` wipe a cloud's state and request
counter before a test (with the sandbox's control token, as every ``/_sandbox/*``
and ``/moto-api/*`` call needs it).  ``catalog_amis`` is what the sandbox catalog's image
filters find, looked up once with boto3.  Nothing is skipped: without moto these fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from cloudtmpl_sandbox import control, manager
from tests.integration.clitools import REPO, ec2
from tests.integration.pgfixtures import pg_server  # noqa: F401  (a session fixture, shared)


def _post(sandbox: dict[str, Any], path: str) -> None:
    status, body = control.call(sandbox["endpoint"], sandbox["token"], "POST", path)
    assert status == 200, (path, status, body)


@pytest.fixture(scope="session")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``manager.start()``'s status dict for a session; both clouds stopped after it."""
    sandbox_dir = tmp_path_factory.mktemp("sandbox")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLOUDTMPL_SANDBOX_DIR", str(sandbox_dir))
        try:
            yield manager.start(sandbox_dir)
        finally:
            manager.stop(sandbox_dir)


@pytest.fixture(scope="session")
def aws_sandbox(sandboxes: dict[str, Any]) -> dict[str, Any]:
    """A running AWS sandbox (status dict for ``aws``)."""
    info: dict[str, Any] = sandboxes["aws"]
    assert info["running"], info
    return info


@pytest.fixture(scope="session")
def openstack_sandbox(sandboxes: dict[str, Any]) -> dict[str, Any]:
    """A running OpenStack sandbox (status dict for ``openstack``: auth_url, user, ...)."""
    info: dict[str, Any] = sandboxes["openstack"]
    assert info["running"], info
    return info


@pytest.fixture
def aws_reset(aws_sandbox: dict[str, Any]) -> dict[str, Any]:
    """Empty moto state and a zeroed request counter for one test."""
    _post(aws_sandbox, "/moto-api/reset")
    _post(aws_sandbox, "/_sandbox/requests/reset")
    return aws_sandbox


@pytest.fixture
def openstack_reset(openstack_sandbox: dict[str, Any]) -> dict[str, Any]:
    """Seeded OpenStack state, start-up knobs and a zeroed request counter for one test."""
    _post(openstack_sandbox, "/_sandbox/reset")
    _post(openstack_sandbox, "/_sandbox/requests/reset")
    return openstack_sandbox


@pytest.fixture(scope="session")
def catalog_amis(aws_sandbox: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(region, abstract image) -> the AMI the sandbox catalog's filter finds there: the
    newest of the owner's images whose name matches (ties: the greater name, then id).
    Asked before any test resets the request counter."""
    catalog = yaml.safe_load((REPO / "providers" / "sandbox-aws.yaml").read_text())
    out = {}
    for region in catalog["regions"]:
        client = ec2(aws_sandbox, region)
        for name, entry in catalog["images"].items():
            images = client.describe_images(
                Owners=[entry["owner"]], Filters=[{"Name": "name", "Values": [entry["name"]]}]
            )["Images"]
            assert images, f"{name}: {entry} matches no image in {region}"
            newest = max(images, key=lambda i: (i["CreationDate"], i["Name"], i["ImageId"]))
            out[(region, name)] = str(newest["ImageId"])
    return out
