"""The sandbox's control token: refusals and how a server takes its identity (pure)."""

from __future__ import annotations

import pytest

from cloudtmpl_sandbox.control import INSTANCE_ENV, TOKEN_ENV, Identity, refusal, take_identity


def test_a_missing_token_is_401_a_wrong_one_403_the_right_one_passes() -> None:
    status, body = refusal(None, "right") or (0, {})
    assert status == 401 and "X-Sandbox-Token" in body["error"]
    assert "sandbox status" in body["error"]  # where to find it
    status, body = refusal("", "right") or (0, {})
    assert status == 401
    status, body = refusal("wrong", "right") or (0, {})
    assert status == 403 and "wrong sandbox token" in body["error"]
    assert refusal("right", "right") is None


def test_identities_are_fresh_and_leave_the_environment() -> None:
    one, two = Identity.new(), Identity.new()
    assert one.token != two.token and one.instance != two.instance
    assert len(one.token) >= 40  # 32 random bytes, URL-safe
    env = {"PATH": "/bin", **one.environ()}
    assert take_identity(env) == one
    assert env == {"PATH": "/bin"}  # nothing the server starts inherits it
    with pytest.raises(SystemExit, match=TOKEN_ENV):
        take_identity({INSTANCE_ENV: "x"})
