"""Fixtures for integration tests against the local sandbox clouds.

``aws_sandbox`` starts one AWS sandbox per test session in a fresh
``CLOUDTMPL_SANDBOX_DIR`` and always stops it; ``aws_reset`` wipes its state and
request counter before a test.  Nothing is skipped: without moto these fail.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from cloudtmpl.sandbox import manager


def _post(url: str) -> None:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


@pytest.fixture(scope="session")
def aws_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running AWS sandbox (status dict for ``aws``), stopped after the session."""
    sandbox_dir = tmp_path_factory.mktemp("sandbox")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLOUDTMPL_SANDBOX_DIR", str(sandbox_dir))
        try:
            info = manager.start(sandbox_dir)["aws"]
            assert info["running"], info
            yield info
        finally:
            manager.stop(sandbox_dir)


@pytest.fixture
def aws_reset(aws_sandbox: dict[str, Any]) -> dict[str, Any]:
    """Empty moto state and a zeroed request counter for one test."""
    endpoint = aws_sandbox["endpoint"]
    _post(f"{endpoint}/moto-api/reset")
    _post(f"{endpoint}/_sandbox/requests/reset")
    return aws_sandbox
