"""Torture tests share the integration tests' sandbox fixtures (one session, both clouds)."""

from __future__ import annotations

from tests.integration.conftest import (  # noqa: F401 - pytest fixtures
    aws_reset,
    aws_sandbox,
    openstack_reset,
    openstack_sandbox,
    sandboxes,
)
