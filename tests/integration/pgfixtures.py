"""A throwaway PostgreSQL server per session and fresh databases on it.

``pg_server`` is a session fixture, registered once for every integration module
by tests/integration/conftest.py's import of it (so one server serves the whole
session); ``new_database`` is a plain function a test imports.  Without server
binaries the fixture fails under CI or as root (CI must run these tests, never
skip them) and skips elsewhere; tests/postgres.py starts and stops the server.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import psycopg
import pytest

from tests import postgres

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.Server]:
    """One throwaway PostgreSQL server for the session, always stopped."""
    reason = postgres.unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true" or postgres.is_root():
            pytest.fail(reason)  # CI must run these tests, never skip them
        pytest.skip(reason)
    with postgres.running() as server:
        yield server


def new_database(server: postgres.Server) -> str:
    """A fresh empty database on ``server``; its URL (with the password)."""
    name = f"t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)
