"""DNS zones and records, buckets and load balancers on the AWS sandbox, through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

from tests.integration.clitools import REPO, edit, run, write

EXAMPLE = REPO / "examples" / "services" / "services.yaml"
REGION = "eu-central-1"


def _client(sandbox: dict[str, Any], service: str, region: str = REGION) -> Any:
    return boto3.client(service, endpoint_url=sandbox["endpoint"], region_name=region,
                        aws_access_key_id=sandbox["access_key"],
                        aws_secret_access_key=sandbox["secret_key"])


def _changes(plan: dict[str, Any]) -> dict[str, str]:
    return {c["address"]: c["action"] for c in plan["changes"]}


def _records(sandbox: dict[str, Any], zone_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    sets = _client(sandbox, "route53", "us-east-1").list_resource_record_sets(
        HostedZoneId=zone_id)["ResourceRecordSets"]
    return {(s["Name"], s["Type"]): s for s in sets}


def test_services_example_lifecycle(tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    template = write(tmp_path / "services.yaml", EXAMPLE.read_text())

    r = run(tmp_path, "apply", "services.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    outputs = run(tmp_path, "outputs", "-s", "services", "--format", "json").json()
    assert outputs["assets_bucket"] == "services-assets"
    assert outputs["lb_dns_name"] and len(outputs["web_addresses"]) == 2

    # the clouds hold what the template says
    zones = _client(aws_reset, "route53", "us-east-1").list_hosted_zones()["HostedZones"]
    (zone,) = [z for z in zones if z["Name"] == "services.example.test."]
    zone_id = zone["Id"].rsplit("/", 1)[-1]
    assert zone["Config"]["Comment"].startswith("cloudtmpl:stack=services;")
    records = _records(aws_reset, zone_id)
    web0 = records[("web0.services.example.test.", "A")]
    assert [v["Value"] for v in web0["ResourceRecords"]] == [outputs["web_addresses"][0]]
    assert web0["TTL"] == 60
    assert ("_cloudtmpl-a.web0.services.example.test.", "TXT") in records  # ownership
    assert records[("www.services.example.test.", "CNAME")]["ResourceRecords"] == [
        {"Value": outputs["lb_dns_name"]}]
    elb = _client(aws_reset, "elb")
    (lb,) = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert lb["LoadBalancerName"] == "services-lb"
    assert len(lb["Instances"]) == 2
    assert lb["HealthCheck"]["Interval"] == 15
    s3 = _client(aws_reset, "s3")
    assert s3.get_bucket_versioning(Bucket="services-assets")["Status"] == "Enabled"
    assert s3.get_bucket_location(Bucket="services-assets")["LocationConstraint"] == REGION
    tags = {t["Key"]: t["Value"]
            for t in s3.get_bucket_tagging(Bucket="services-assets")["TagSet"]}
    assert tags["cloudtmpl:stack"] == "services" and tags["purpose"] == "site-assets"

    # a second plan is a no-op: one listing per service kind (+ per zone/bucket/balancer)
    r = run(tmp_path, "plan", "services.yaml", "--format", "json", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    plan = r.json()
    assert set(_changes(plan).values()) == {"no-op"}
    assert plan["stats"]["api_requests"] <= 16

    # update in place: a third server (joins the balancer), TTLs, health check, versioning
    template.write_text(edit(EXAMPLE.read_text(), [
        ("count: 2", "count: 3"), ("ttl: 60", "ttl: 120"), ("interval: 15", "interval: 20"),
        ("versioning: true", "versioning: false")]))
    r = run(tmp_path, "plan", "services.yaml", "--format", "json")
    assert r.code == 0, r.err
    changes = _changes(r.json())
    assert changes["lb"] == "update" and changes["assets"] == "update"
    assert changes["web0_record"] == "update" and changes["zone"] == "no-op"
    assert changes["web_group.2"] == "create"
    r = run(tmp_path, "apply", "services.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    (lb,) = elb.describe_load_balancers()["LoadBalancerDescriptions"]
    assert len(lb["Instances"]) == 3 and lb["HealthCheck"]["Interval"] == 20
    assert _records(aws_reset, zone_id)[("web0.services.example.test.", "A")]["TTL"] == 120
    assert s3.get_bucket_versioning(Bucket="services-assets")["Status"] == "Suspended"
    r = run(tmp_path, "plan", "services.yaml", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out

    # a record value changes in place; the record's type forces a replacement
    text = template.read_text()
    template.write_text(edit(text, [("name: www\n      type: CNAME\n      ttl: 300\n"
                                     "      records: [{get_attr: [lb, dns_name]}]",
                                     "name: www\n      type: TXT\n      ttl: 300\n"
                                     "      records: [hello world]")]))
    r = run(tmp_path, "apply", "services.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    records = _records(aws_reset, zone_id)
    assert ("www.services.example.test.", "CNAME") not in records
    assert records[("www.services.example.test.", "TXT")]["ResourceRecords"] == [
        {"Value": '"hello world"'}]
    r = run(tmp_path, "plan", "services.yaml", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out

    # a non-empty bucket is never deleted without force: true
    s3.put_object(Bucket="services-assets", Key="index.html", Body=b"<h1>hi</h1>")
    r = run(tmp_path, "destroy", "services.yaml", "--yes")
    assert r.code == 1
    assert "bucket services-assets (assets) is not empty" in r.out + r.err
    assert "force: true" in r.out + r.err
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["services-assets"]
    assert _client(aws_reset, "route53", "us-east-1").list_hosted_zones()["HostedZones"] == []
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == []

    # force: true (applied), then destroy deletes it with every object version
    template.write_text(edit(EXAMPLE.read_text(), [
        ("versioning: true", "versioning: true\n      force: true")]))
    r = run(tmp_path, "apply", "services.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    s3.put_object(Bucket="services-assets", Key="index.html", Body=b"<h1>v2</h1>")
    r = run(tmp_path, "destroy", "services.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert s3.list_buckets()["Buckets"] == []
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == []
    assert _client(aws_reset, "route53", "us-east-1").list_hosted_zones()["HostedZones"] == []


def test_records_only_in_the_stacks_own_zones(tmp_path: Path, aws_reset: dict[str, Any]
                                              ) -> None:
    r53 = _client(aws_reset, "route53", "us-east-1")
    foreign = r53.create_hosted_zone(Name="foreign.test.", CallerReference="x")
    zone_id = foreign["HostedZone"]["Id"].rsplit("/", 1)[-1]
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "rec.yaml", f"""\
heat_template_version: 2021-04-16
placement: {{provider: sandbox-aws, region: us-east-1}}
resources:
  www:
    type: Cloud::DNS::Record
    properties: {{zone: {zone_id}, name: www, type: A, records: [192.0.2.1]}}
""")
    r = run(tmp_path, "apply", "rec.yaml", "--yes")
    assert r.code == 1
    assert "is not a zone of stack 'rec'" in r.out + r.err
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert {s["Type"] for s in sets} == {"NS", "SOA"}


def test_bucket_in_us_east_1_and_its_name_suffix(tmp_path: Path, aws_reset: dict[str, Any]
                                                 ) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    write(tmp_path / "b.yaml", """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: us-east-1}
resources:
  logs:
    type: Cloud::Storage::Bucket
    properties: {name_suffix: acme-123, metadata: {team: ops}}
outputs:
  name: {value: {get_resource: logs}}
""")
    r = run(tmp_path, "apply", "b.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert run(tmp_path, "outputs", "-s", "b", "--format", "json").json() == {
        "name": "b-logs-acme-123"}
    r = run(tmp_path, "plan", "b.yaml", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    r = run(tmp_path, "plan", "b.yaml", "--detailed-exitcode", "-s", "b")
    assert r.code == 0
    r = run(tmp_path, "destroy", "b.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert _client(aws_reset, "s3", "us-east-1").list_buckets()["Buckets"] == []
