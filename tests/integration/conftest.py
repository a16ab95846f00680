"""Fixtures for integration tests against the local sandbox clouds.

``sandboxes`` starts both sandbox clouds (AWS and OpenStack: ``manager.start``
starts them together) once per test session in a fresh ``CLOUDTMPL_SANDBOX_DIR``
and always stops them; ``aws_sandbox``/``openstack_sandbox`` are their status
dicts.  ``aws_reset``/``openstack_reset`` wipe a cloud's state and request
counter before a test (with the sandbox's control token, as every ``/_sandbox/*``
and ``/moto-api/*`` call needs it).  Nothing is skipped: without moto these fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cloudtmpl.sandbox import control, manager


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
