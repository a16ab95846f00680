"""Heat's documented types through the CLI: one cloudtmpl lacks is ``unsupported-kind``
naming the target, a name Heat does not have stays ``unknown-resource-type``; and
Designate's v1 names (``OS::Designate::Domain``/``Record``) onto DNS zones and records:
applied on AWS (Route 53), refused on OpenStack (the emulator has no Designate).  The
record is named relative to its zone: a full name (``www.v1.example.com.``, as Heat's v1
writes it) is created alike, but the next plan compares it with the relative name
Route 53's listing gives and plans a replacement (known, for RecordSet too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.clitools import run, write

pytestmark = pytest.mark.integration

SAHARA = """\
heat_template_version: 2018-08-31
resources:
  hadoop:
    type: OS::Sahara::Cluster
    properties: {name: h}
  typo:
    type: OS::Nova::Sever
"""

DESIGNATE_V1 = """\
heat_template_version: 2018-08-31
resources:
  zone:
    type: OS::Designate::Domain
    properties: {name: v1.example.com., email: admin@example.com, ttl: 600}
  www:
    type: OS::Designate::Record
    properties:
      domain: {get_resource: zone}
      name: www
      type: A
      data: 192.0.2.10
      ttl: 120
"""


@pytest.mark.parametrize("target", ["sandbox-aws/eu-central-1", "sandbox-openstack/de-fra-1"])
def test_a_heat_type_cloudtmpl_lacks_is_unsupported_naming_the_target(
        tmp_path: Path, target: str) -> None:
    write(tmp_path / "cloudtmpl.yaml", "providers: {}\n")
    write(tmp_path / "t.yaml", SAHARA)
    r = run(tmp_path, "validate", "t.yaml", "--target", target)
    assert r.code != 0
    name = target.split("/")[0]
    assert (f"error[unsupported-kind]: resource 'hadoop': 'OS::Sahara::Cluster' is a Heat type "
            f"(Sahara) that cloudtmpl cannot create on target '{name}'") in r.err, r.err
    assert "t.yaml:4:" in r.err  # where: the type's line
    assert "error[unknown-resource-type]: resource 'typo'" in r.err and "OS::Nova::Server" in r.err


def _route53(info: dict[str, Any]) -> Any:
    return boto3.client("route53", endpoint_url=info["endpoint"],
                        aws_access_key_id=info["access_key"],
                        aws_secret_access_key=info["secret_key"],
                        region_name="us-east-1")


def test_designate_v1_names_apply_on_aws_and_are_refused_on_openstack(
        tmp_path: Path, aws_reset: dict[str, Any], openstack_sandbox: dict[str, Any]) -> None:
    write(tmp_path / "cloudtmpl.yaml", "providers: {}\n")
    write(tmp_path / "dns.yaml", DESIGNATE_V1)
    refused = run(tmp_path, "validate", "dns.yaml", "--target", "sandbox-openstack/de-fra-1")
    assert refused.code != 0 and "unsupported-kind" in refused.err, refused.err
    assert "'sandbox-openstack'" in refused.err and "(OS::Designate::Domain)" in refused.err

    target = "sandbox-aws/eu-central-1"
    applied = run(tmp_path, "apply", "dns.yaml", "--target", target, "--yes")
    assert applied.code == 0, applied.err + applied.out
    r53 = _route53(aws_reset)
    [zone] = [z for z in r53.list_hosted_zones()["HostedZones"]
              if z["Name"] == "v1.example.com."]
    sets = r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    [www] = [s for s in sets if s["Name"] == "www.v1.example.com." and s["Type"] == "A"]
    assert (www["TTL"], [v["Value"] for v in www["ResourceRecords"]]) == (120, ["192.0.2.10"])
    again = run(tmp_path, "plan", "dns.yaml", "--target", target, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err  # a no-op
    gone = run(tmp_path, "destroy", "dns.yaml", "--target", target, "--yes")
    assert gone.code == 0, gone.err + gone.out
    assert [z for z in r53.list_hosted_zones()["HostedZones"]
            if z["Name"] == "v1.example.com."] == []
