"""Resource names through the real CLI: bad ones are refused before any cloud call,
good ones that differ only slightly keep apart in the cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudtmpl_sandbox import control
from tests.integration.clitools import ec2, run, write

COLLIDING = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: eu-central-1}
resources:
  "a/b": {type: Cloud::Compute::KeyPair}
  "a-b": {type: Cloud::Compute::KeyPair}
  "a;b": {type: Cloud::Compute::KeyPair}
"""

CONTROL = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-openstack, region: de-fra-1}
resources:
  "k\\0ey": {type: Cloud::Compute::KeyPair}
  "new\\nline": {type: Cloud::Compute::KeyPair}
  "t\\tab": {type: Cloud::Compute::KeyPair}
  fine: {type: Cloud::Compute::KeyPair}
"""

CLOSE = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: eu-central-1}
resources:
  a-b: {type: Cloud::Compute::KeyPair}
  a_b: {type: Cloud::Compute::KeyPair}
  A-b: {type: Cloud::Compute::KeyPair}
"""


def total(sandbox: dict[str, Any]) -> int:
    status, counts = control.call(sandbox["endpoint"], sandbox["token"], "GET",
                                  "/_sandbox/requests")
    assert status == 200, counts
    return int(counts["total"])


def test_bad_names_are_refused_one_diagnostic_each_before_any_call(
        tmp_path: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "coll.yaml", COLLIDING)
    write(tmp_path / "ctl.yaml", CONTROL)
    cases = {"coll.yaml": [(4, "'/'"), (6, "';'")],
             "ctl.yaml": [(4, "U+0000"), (5, "U+000A"), (6, "U+0009")]}
    for name, expected in cases.items():
        r = run(tmp_path, "validate", name, "--format", "json")
        assert r.code == 1, r.out + r.err
        diags = r.json()["diagnostics"]
        assert [(d["code"], d["line"]) for d in diags] == [
            ("invalid-resource-name", line) for line, _ in expected], diags
        assert all(what in d["message"] for d, (_, what) in zip(diags, expected, strict=True))
        assert all(d["file"] == name and d["column"] == 3 and d["hint"] for d in diags)
        text = run(tmp_path, "validate", name)
        assert text.code == 1 and "Traceback" not in text.err
        assert "\0" not in text.out + text.err and "\t" not in text.out + text.err
        # apply refuses the same way, and nothing reaches a cloud
        r = run(tmp_path, "apply", name, "--yes")
        assert r.code == 1 and "invalid-resource-name" in r.out + r.err, r.out + r.err
    assert total(aws_reset) == 0 and total(openstack_reset) == 0
    assert not (tmp_path / ".cloudtmpl" / "keys").exists() or \
        not list((tmp_path / ".cloudtmpl" / "keys").glob("*.pem"))


def test_names_that_differ_only_slightly_get_a_key_pair_each(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    write(tmp_path / "coll.yaml", CLOSE)
    r = run(tmp_path, "apply", "coll.yaml", "--yes")
    assert r.code == 0, r.out + r.err
    pairs = ec2(aws_reset, "eu-central-1").describe_key_pairs()["KeyPairs"]
    assert sorted(p["KeyName"] for p in pairs) == ["coll.A-b", "coll.a-b", "coll.a_b"]
    keys = sorted(p.name for p in (tmp_path / ".cloudtmpl" / "keys").glob("coll.*.pem"))
    assert keys == ["coll.A-b.pem", "coll.a-b.pem", "coll.a_b.pem"]
    assert run(tmp_path, "plan", "coll.yaml", "--detailed-exitcode").code == 0  # no churn
    assert run(tmp_path, "destroy", "coll.yaml", "--yes").code == 0
    assert ec2(aws_reset, "eu-central-1").describe_key_pairs()["KeyPairs"] == []
