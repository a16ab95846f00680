"""Data residency end to end: the real CLI against both sandbox clouds (issue #5).

* the ``examples/residency`` stack plans inside its residency (every change
  explained), applies and destroys cleanly (checked with boto3 and libcloud);
* a template that breaks a residency rule fails before any cloud API request:
  both sandboxes' request counters stay at exactly 0;
* pinned and data-bearing resources are not relocated without
  ``--allow-relocation``;
* a live resource that the residency no longer allows is reported as drift;
* ``cloudtmpl providers`` lists the sandbox targets' regions, countries and
  jurisdictions.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox import control, manager
from tests.integration.clitools import (
    REPO,
    Result,
    ec2,
    edit,
    os_driver,
    owned,
    run,
    stack_instances,
    tags,
    write,
)

EXAMPLE = REPO / "examples" / "residency" / "residency.yaml"
AWS_REGIONS = ("us-east-1", "eu-central-1")
OS_REGIONS = ("de-fra-1", "nl-ams-1")
HOT = "heat_template_version: 2021-04-16\n"

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]) -> Path:
    """A project directory of its own (own state) with the residency example in it."""
    write(tmp_path / "cloudtmpl.yaml", "providers: {}\n")
    write(tmp_path / "stack.yaml", EXAMPLE.read_text())
    return tmp_path


# -- looking inside the clouds ------------------------------------------------------
def requests_seen(sandbox: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's own request counter (``GET /_sandbox/requests`` is not counted)."""
    status, data = control.call(sandbox["endpoint"], sandbox["token"], "GET",
                                "/_sandbox/requests")
    assert status == 200, data
    return dict(data)


def running(sandbox: dict[str, Any]) -> tuple[Any, Any]:
    return sandbox["pid"], sandbox["endpoint"]


def aws_volumes(sandbox: dict[str, Any], region: str, stack: str) -> list[dict[str, Any]]:
    found = ec2(sandbox, region).describe_volumes(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": [stack]}]
    )["Volumes"]
    return [v for v in found if v["State"] not in ("deleting", "deleted")]


def aws_groups(sandbox: dict[str, Any], region: str, stack: str) -> list[dict[str, Any]]:
    groups = ec2(sandbox, region).describe_security_groups()["SecurityGroups"]
    return [g for g in groups if g["GroupName"].startswith(f"{stack}.")]


def os_volumes(sandbox: dict[str, Any], region: str, stack: str) -> dict[str, Any]:
    """Resource address -> libcloud volume, for the stack's volumes in one region."""
    return {
        (v.extra.get("metadata") or {})["cloudtmpl:resource"]: v
        for v in os_driver(sandbox, region).list_volumes()
        if (v.extra.get("metadata") or {}).get("cloudtmpl:stack") == stack
    }


def os_servers(sandbox: dict[str, Any], region: str, stack: str) -> dict[str, Any]:
    return {
        n.extra["metadata"]["cloudtmpl:resource"]: n
        for n in owned(os_driver(sandbox, region).list_nodes(), stack)
    }


def nothing_left(aws: dict[str, Any], openstack: dict[str, Any], stack: str) -> None:
    for region in AWS_REGIONS:
        assert stack_instances(aws, region, stack) == [], region
        assert aws_volumes(aws, region, stack) == [], region
        assert aws_groups(aws, region, stack) == [], region
    for region in OS_REGIONS:
        assert os_servers(openstack, region, stack) == {}, region
        assert os_volumes(openstack, region, stack) == {}, region


def plan_json(project: Path, *args: str) -> dict[str, Any]:
    r = run(project, "plan", *args, "--format", "json")
    assert r.code == 0, r.err
    data: dict[str, Any] = r.json()
    return data


def eu_countries(project: Path) -> set[str]:
    """The countries the sandbox targets declare for the EU jurisdiction."""
    listing = json.loads(run(project, "providers", "--format", "json").out)
    return {
        region["country"]
        for target in listing.values()
        for region in target["regions"].values()
        if region["jurisdiction"] == "EU"
    }


# -- the example ------------------------------------------------------------------
EXPECTED = {
    "web.0": ("sandbox-aws", "eu-central-1"),
    "web.1": ("sandbox-openstack", "de-fra-1"),
    "customer_db": ("sandbox-openstack", "de-fra-1"),
    "customer_data": ("sandbox-openstack", "de-fra-1"),
    "customer_data_attachment": ("sandbox-openstack", "de-fra-1"),
    "replica_a": ("sandbox-aws", "eu-central-1"),
    "replica_a_data": ("sandbox-aws", "eu-central-1"),
    "replica_a_attachment": ("sandbox-aws", "eu-central-1"),
    "replica_b": ("sandbox-openstack", "de-fra-1"),
    "replica_b_data": ("sandbox-openstack", "de-fra-1"),
    "replica_b_attachment": ("sandbox-openstack", "de-fra-1"),
}


def test_example_plans_inside_its_residency_applies_and_destroys(
    project: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]
) -> None:
    allowed = eu_countries(project)
    assert allowed == {"DE", "NL"}
    # --target cannot pull anything out of the EU: every resource has a rule of
    # its own or the stack's placement, and the residency guards them all
    for extra in ((), ("--target", "sandbox-aws/us-east-1")):
        plan = plan_json(project, "stack.yaml", *extra)
        changes = plan["changes"]
        where = {c["address"]: (c["placement"]["target"], c["placement"]["region"])
                 for c in changes}
        assert where == EXPECTED
        assert {c["action"] for c in changes} == {"create"}
        for c in changes:
            p = c["placement"]
            assert p["country"] in allowed and p["jurisdiction"] == "EU", c["address"]
            assert p["why"].startswith(f"{p['target']}/{p['region']}: "), c["address"]
            assert "stack residency (jurisdictions: [EU])" in p["why"], c["address"]
            assert c["drift"] == ""
        assert plan["residency"] == {
            "countries": dict(Counter(c["placement"]["country"] for c in changes)),
            "jurisdictions": {"EU": len(changes)},
            "drift": [],
        }
        assert plan["residency"]["countries"] == {"DE": 11}
    whys = {c["address"]: c["placement"]["why"] for c in changes}
    assert "group 'web' spread (sandbox-openstack/de-fra-1)" in whys["web.1"]
    assert "kept with" in whys["customer_data_attachment"]
    assert "resource 'customer_data' placement (provider=sandbox-openstack, country=DE)" in whys[
        "customer_data_attachment"]
    assert "resource 'replica_a_data' placement" in whys["replica_a"]
    text = run(project, "plan", "stack.yaml").out
    assert "Residency: DE 11 (jurisdictions: EU 11)" in text

    r = run(project, "apply", "stack.yaml", "--yes")
    assert r.code == 0, r.err + r.out

    # AWS: eu-central-1 holds web.0 and replica a (attached); us-east-1 nothing
    instances = {tags(i)["cloudtmpl:resource"]: i
                 for i in stack_instances(aws_reset, "eu-central-1", "stack")}
    assert set(instances) == {"web.0", "replica_a"}
    (volume,) = aws_volumes(aws_reset, "eu-central-1", "stack")
    assert tags(volume)["cloudtmpl:resource"] == "replica_a_data"
    assert [a["InstanceId"] for a in volume["Attachments"]] == [
        instances["replica_a"]["InstanceId"]]
    assert stack_instances(aws_reset, "us-east-1", "stack") == []
    assert aws_volumes(aws_reset, "us-east-1", "stack") == []

    # OpenStack: de-fra-1 holds web.1, the customer data and replica b; nl-ams-1 nothing
    servers = os_servers(openstack_reset, "de-fra-1", "stack")
    assert set(servers) == {"web.1", "customer_db", "replica_b"}
    volumes = os_volumes(openstack_reset, "de-fra-1", "stack")
    assert set(volumes) == {"customer_data", "replica_b_data"}
    assert volumes["customer_data"].size == 10
    for vol, server in (("customer_data", "customer_db"), ("replica_b_data", "replica_b")):
        assert [a["server_id"] for a in volumes[vol].extra["attachments"]] == [
            servers[server].id]
    assert os_servers(openstack_reset, "nl-ams-1", "stack") == {}
    assert os_volumes(openstack_reset, "nl-ams-1", "stack") == {}

    assert run(project, "plan", "stack.yaml", "--detailed-exitcode").code == 0
    r = run(project, "destroy", "stack.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    nothing_left(aws_reset, openstack_reset, "stack")


# -- residency violations: diagnostics, and not one API request ---------------------
RESOURCE = "  vol:\n    type: Cloud::Block::Volume\n"

VIOLATIONS: dict[str, dict[str, Any]] = {
    "stack-residency-vs-target": {
        "files": {"violation.yaml": HOT + "placement:\n  residency: {countries: [DE]}\n"
                  "resources:\n" + RESOURCE + "    properties: {size: 1}\n"},
        "args": ("--target", "sandbox-aws/us-east-1"),
        "code": "residency-violation",
        "at": "violation.yaml:5:3",
        "says": ("--target (sandbox-aws/us-east-1)", "countries: [DE]"),
        "hint": "hint: allowed: sandbox-aws/eu-central-1 (DE/EU), sandbox-openstack/de-fra-1",
    },
    "resource-country-outside-jurisdiction": {
        "files": {"violation.yaml": HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
                  "resources:\n" + RESOURCE + "    placement: {country: US}\n"
                  "    properties: {size: 1}\n"},
        "args": ("--target", "sandbox-aws"),
        "code": "placement-conflict",
        "at": "violation.yaml:7:5",
        "says": ("country=US", "stack residency (jurisdictions: [EU])"),
        "hint": "hint: allowed: sandbox-aws/eu-central-1 (DE/EU)",
    },
    "co-located-rules-conflict": {
        "files": {"violation.yaml": HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
                  "resources:\n"
                  "  db:\n    type: Cloud::Compute::Server\n    placement: {country: DE}\n"
                  "    properties: {image: ubuntu-22.04, flavor: small}\n"
                  + RESOURCE + "    placement: {country: NL}\n    properties: {size: 1}\n"
                  "  attach:\n    type: Cloud::Block::VolumeAttachment\n    properties:\n"
                  "      instance_uuid: {get_resource: db}\n"
                  "      volume_id: {get_resource: vol}\n"},
        "args": (),
        "code": "placement-conflict",
        "at": "violation.yaml:11:5",
        "says": ("resource 'db' placement (country=DE)", "resource 'vol' placement (country=NL)",
                 "refer to each other by id"),
        "hint": "hint: resource 'db' placement allows: sandbox-aws/eu-central-1 (DE/EU)",
    },
    "unknown-country-code": {
        "files": {"violation.yaml": HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
                  "resources:\n" + RESOURCE + "    placement: {country: XZ}\n"
                  "    properties: {size: 1}\n"},
        "args": ("--target", "sandbox-aws"),
        "code": "unknown-country",
        "at": "violation.yaml:7:5",
        "says": ("'XZ' is not an ISO 3166 country code",),
        "hint": "hint: use a two-letter code such as DE",
    },
    "unknown-residency-country": {
        "files": {"violation.yaml": HOT + "placement:\n  residency: {countries: [DE, EU]}\n"
                  "resources:\n" + RESOURCE + "    properties: {size: 1}\n"},
        "args": ("--target", "sandbox-aws"),
        "code": "unknown-country",
        "at": "violation.yaml:3:3",
        "says": ("residency: 'EU' is not an ISO 3166 country code",),
        "hint": "hint: use two-letter codes",
    },
    "region-no-target-has": {
        "files": {"violation.yaml": HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
                  "resources:\n" + RESOURCE + "    placement: {region: eu-west-9}\n"
                  "    properties: {size: 1}\n"},
        "args": ("--target", "sandbox-aws"),
        "code": "unknown-region",
        "at": "violation.yaml:7:5",
        "says": ("no target has a region 'eu-west-9'",),
        "hint": "hint: regions: de-fra-1, eu-central-1, nl-ams-1, us-east-1",
    },
    "spread-with-one-entry": {
        "files": {"violation.yaml": HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
                  "resources:\n  media:\n    type: Cloud::Group\n"
                  "    placement: {spread: [sandbox-aws/eu-central-1]}\n"
                  "    properties:\n      count: 2\n"
                  "      resource_def: {type: Cloud::Block::Volume, properties: {size: 1}}\n"},
        "args": (),
        "code": "spread-too-small",
        "at": "violation.yaml:7:25",
        "says": ("spread needs a list of at least two placements",),
        "hint": "hint: spread: [target/region, target/region]",
    },
    "nested-template-widens-residency": {
        "files": {
            "violation.yaml": HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
            "resources:\n  storage:\n    type: storage.yaml\n",
            "storage.yaml": HOT + "placement:\n  residency: {jurisdictions: [EU, US]}\n"
            "resources:\n" + RESOURCE + "    properties: {size: 1}\n",
        },
        "args": ("--target", "sandbox-aws"),
        "code": "residency-widened",
        "at": "storage.yaml:3:3",
        "says": ("the nested template storage.yaml allows more than its parent",
                 "jurisdictions: [EU, US]"),
        "hint": "hint: a nested template may only narrow its parent's residency",
    },
}


def assert_diagnostic(r: Result, case: dict[str, Any]) -> None:
    assert r.code == 1, r.out + r.err
    assert "Traceback" not in r.err
    line = next((x for x in r.err.splitlines() if f"error[{case['code']}]" in x), None)
    assert line is not None, r.err
    assert line.startswith(f"{case['at']}: error[{case['code']}]: "), line
    for fragment in case["says"]:
        assert fragment in line, (fragment, line)
    assert case["hint"] in r.err, r.err


@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_violation_is_reported_before_any_api_request(
    project: Path, tmp_path_factory: pytest.TempPathFactory,
    aws_reset: dict[str, Any], openstack_reset: dict[str, Any], name: str,
) -> None:
    case = VIOLATIONS[name]
    for file, text in case["files"].items():
        write(project / file, text)
    before = manager.status()  # the fixtures' sandboxes ($CLOUDTMPL_SANDBOX_DIR)
    assert running(before["aws"]) == running(aws_reset)
    assert running(before["openstack"]) == running(openstack_reset)
    assert requests_seen(aws_reset)["total"] == requests_seen(openstack_reset)["total"] == 0

    for command in ("validate", "plan"):
        r = run(project, command, "violation.yaml", *case["args"])
        assert_diagnostic(r, case)
    r = run(project, "plan", "violation.yaml", *case["args"], "--format", "json")
    assert r.code == 1 and "Traceback" not in r.err

    # not one request reached either cloud, and the sandboxes are still the same ones
    assert requests_seen(aws_reset) == {"total": 0, "by_service": {}}
    assert requests_seen(openstack_reset) == {"total": 0, "by_service": {}}
    after = manager.status()
    assert running(after["aws"]) == running(aws_reset)
    assert running(after["openstack"]) == running(openstack_reset)

    # with no sandbox running at all, the command fails the same way without starting one
    empty = tmp_path_factory.mktemp("no-sandbox")
    r = run(project, "plan", "violation.yaml", *case["args"],
            env={"CLOUDTMPL_SANDBOX_DIR": str(empty)})
    assert_diagnostic(r, case)
    assert list(empty.iterdir()) == []


def test_request_counters_are_the_ones_the_cli_uses(
    project: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]
) -> None:
    """The control for the zero counts above: a valid plan is seen by both counters."""
    status = json.loads(run(project, "sandbox", "status", "--format", "json").out)
    assert status["aws"]["endpoint"] == aws_reset["endpoint"]
    assert status["openstack"]["endpoint"] == openstack_reset["endpoint"]
    assert requests_seen(aws_reset)["total"] == requests_seen(openstack_reset)["total"] == 0
    plan = plan_json(project, "stack.yaml")
    aws, openstack = requests_seen(aws_reset), requests_seen(openstack_reset)
    assert aws["total"] > 0 and openstack["total"] > 0
    assert set(aws["by_service"]) == {"ec2"}
    assert {"identity", "compute", "volume"} <= set(openstack["by_service"])
    # the plan's own count is the cloud requests it made (the sandboxes count them all)
    assert plan["stats"]["api_requests"] > 0
    print(f"valid plan of the example: aws {aws}, openstack {openstack}, "
          f"plan stats {plan['stats']}")


# -- pinning ----------------------------------------------------------------------------
PINNED = HOT + """\
placement:
  residency: {jurisdictions: [EU]}
resources:
  records:
    type: Cloud::Block::Volume
    placement: {provider: sandbox-openstack, region: de-fra-1, pinned: true}
    properties: {size: 1}
  scratch:
    type: Cloud::Block::Volume
    placement: {provider: sandbox-openstack, region: de-fra-1}
    properties: {size: 1}
  key:
    type: Cloud::Compute::KeyPair
    placement: {provider: sandbox-openstack, region: de-fra-1}
"""
RECORDS = ("region: de-fra-1, pinned: true", "region: nl-ams-1, pinned: true")


def test_pinned_and_data_bearing_resources_are_not_relocated(
    project: Path, openstack_reset: dict[str, Any]
) -> None:
    write(project / "pin.yaml", PINNED)
    r = run(project, "apply", "pin.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    records = os_volumes(openstack_reset, "de-fra-1", "pin")["records"]

    # a pinned volume moved to another region: refused, naming it and both regions
    write(project / "pin.yaml", edit(PINNED, [RECORDS]))
    for command in ("plan", "apply"):
        args = ("--yes",) if command == "apply" else ()
        r = run(project, command, "pin.yaml", *args)
        assert r.code == 1, r.out + r.err
        (line,) = [x for x in r.err.splitlines() if "error[relocation-refused]" in x]
        assert line.startswith("pin.yaml:5:3: error[relocation-refused]: resource 'records' "
                               "is pinned in sandbox-openstack/de-fra-1 (DE)")
        assert "sandbox-openstack/nl-ams-1 (NL)" in line
        assert "--allow-relocation" in r.err
    assert set(os_volumes(openstack_reset, "de-fra-1", "pin")) == {"records", "scratch"}
    assert os_volumes(openstack_reset, "nl-ams-1", "pin") == {}

    # with --allow-relocation the plan replaces it in the new region
    plan = plan_json(project, "pin.yaml", "--allow-relocation")
    by = {c["address"]: c for c in plan["changes"]}
    assert by["records"]["action"] == "replace"
    assert by["records"]["physical_id"] == records.id
    assert (by["records"]["placement"]["region"], by["records"]["placement"]["country"]) == (
        "nl-ams-1", "NL")
    assert "moves from sandbox-openstack/de-fra-1" in by["records"]["reason"]
    assert by["scratch"]["action"] == by["key"]["action"] == "no-op"

    # an unpinned volume holds data too: refused; a key pair is not guarded
    key = "KeyPair\n    placement: {provider: sandbox-openstack, region: "
    moved = edit(PINNED, [("region: de-fra-1}\n    properties: {size: 1}",
                           "region: nl-ams-1}\n    properties: {size: 1}"),
                          (key + "de-fra-1}", key + "nl-ams-1}")])
    write(project / "pin.yaml", moved)
    r = run(project, "plan", "pin.yaml")
    assert r.code == 1
    refused = [x for x in r.err.splitlines() if "error[relocation-refused]" in x]
    assert len(refused) == 1, r.err
    assert refused[0].startswith("pin.yaml:9:3: error[relocation-refused]: resource 'scratch' "
                                 "holds data in sandbox-openstack/de-fra-1 (DE)")
    assert "sandbox-openstack/nl-ams-1 (NL)" in refused[0] and "'key'" not in r.err

    r = run(project, "apply", "pin.yaml", "--allow-relocation", "--yes")
    assert r.code == 0, r.err + r.out
    assert set(os_volumes(openstack_reset, "de-fra-1", "pin")) == {"records"}
    assert set(os_volumes(openstack_reset, "nl-ams-1", "pin")) == {"scratch"}
    assert run(project, "plan", "pin.yaml", "--detailed-exitcode").code == 0

    r = run(project, "destroy", "pin.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    for region in OS_REGIONS:
        assert os_volumes(openstack_reset, region, "pin") == {}


# -- drift --------------------------------------------------------------------------------
DRIFTING = HOT + """\
placement:
  provider: sandbox-aws
  region: us-east-1
resources:
  web_sg:
    type: Cloud::Network::SecurityGroup
    properties:
      description: http
      rules: [{protocol: tcp, port_range_min: 80, port_range_max: 80}]
  logs:
    type: Cloud::Block::Volume
    properties: {size: 1}
"""
TO_GERMANY = ("  region: us-east-1\n", "  region: eu-central-1\n  residency: {countries: [DE]}\n")
DRIFT_TEXT = "live in sandbox-aws/us-east-1 (US/US), outside the stack residency (countries: [DE])"


def test_resources_left_outside_a_new_residency_are_drift(
    project: Path, aws_reset: dict[str, Any]
) -> None:
    write(project / "drift.yaml", DRIFTING)
    r = run(project, "apply", "drift.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    (group,) = aws_groups(aws_reset, "us-east-1", "drift")

    write(project / "drift.yaml", edit(DRIFTING, [TO_GERMANY]))
    # the volume holds data: moving it to Germany needs --allow-relocation
    r = run(project, "plan", "drift.yaml")
    assert r.code == 1
    (line,) = [x for x in r.err.splitlines() if "error[relocation-refused]" in x]
    assert "resource 'logs' holds data in sandbox-aws/us-east-1 (US)" in line
    assert "sandbox-aws/eu-central-1 (DE)" in line

    plan = plan_json(project, "drift.yaml", "--allow-relocation")
    by = {c["address"]: c for c in plan["changes"]}
    assert set(by) == {"web_sg", "logs"}
    for c in by.values():
        assert c["action"] == "replace"
        assert c["drift"] == DRIFT_TEXT
        assert (c["placement"]["region"], c["placement"]["country"]) == ("eu-central-1", "DE")
    assert by["web_sg"]["physical_id"] == group["GroupId"]
    assert plan["residency"] == {"countries": {"DE": 2}, "jurisdictions": {"EU": 2},
                                 "drift": ["logs", "web_sg"]}

    text = run(project, "plan", "drift.yaml", "--allow-relocation").out
    assert text.count(f"! {DRIFT_TEXT}") == 2, text
    assert "Residency: DE 2 (jurisdictions: EU 2); outside the residency now: logs, web_sg" in (
        text), text

    # applying it moves both into Germany; the drift is gone
    r = run(project, "apply", "drift.yaml", "--allow-relocation", "--yes")
    assert r.code == 0, r.err + r.out
    assert aws_groups(aws_reset, "us-east-1", "drift") == []
    assert aws_volumes(aws_reset, "us-east-1", "drift") == []
    assert len(aws_groups(aws_reset, "eu-central-1", "drift")) == 1
    assert len(aws_volumes(aws_reset, "eu-central-1", "drift")) == 1
    plan = plan_json(project, "drift.yaml")
    assert plan["residency"]["drift"] == [] and not any(c["drift"] for c in plan["changes"])
    assert run(project, "plan", "drift.yaml", "--detailed-exitcode").code == 0

    r = run(project, "destroy", "drift.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    for region in AWS_REGIONS:
        assert aws_groups(aws_reset, region, "drift") == []
        assert aws_volumes(aws_reset, region, "drift") == []


# -- providers ---------------------------------------------------------------------------
def test_providers_lists_sandbox_targets_with_countries_and_jurisdictions(
    project: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]
) -> None:
    r = run(project, "providers", "--format", "json")
    assert r.code == 0, r.err
    listing = r.json()
    assert listing["sandbox-aws"]["type"] == "aws" and listing["sandbox-aws"]["sandbox"] is True
    assert listing["sandbox-openstack"]["type"] == "openstack"
    assert listing["sandbox-openstack"]["sandbox"] is True

    def where(target: str) -> dict[str, tuple[str, str]]:
        return {name: (r["country"], r["jurisdiction"])
                for name, r in listing[target]["regions"].items()}

    assert where("sandbox-aws") == {"us-east-1": ("US", "US"), "eu-central-1": ("DE", "EU")}
    assert where("sandbox-openstack") == {"de-fra-1": ("DE", "EU"), "nl-ams-1": ("NL", "EU")}
    assert listing["sandbox-aws"]["default_region"] == "us-east-1"
    assert listing["sandbox-openstack"]["default_region"] == "de-fra-1"
    text = run(project, "providers").out
    assert "sandbox-openstack" in text and "NL/EU" in text and "US/US" in text
    # listing targets is catalog data: no cloud is asked
    assert requests_seen(aws_reset)["total"] == requests_seen(openstack_reset)["total"] == 0


def test_residency_of_a_middle_template_holds_for_templates_it_nests(
    project: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]
) -> None:
    write(project / "top.yaml", HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
          "resources:\n  tier: {type: middle.yaml}\n")
    write(project / "middle.yaml", HOT + "placement:\n  residency: {countries: [DE]}\n"
          "resources:\n  data: {type: inner.yaml}\n")
    write(project / "inner.yaml", HOT + "placement:\n  residency: {jurisdictions: [EU]}\n"
          "resources:\n" + RESOURCE + "    properties: {size: 1}\n")
    r = run(project, "plan", "top.yaml", "--target", "sandbox-openstack/nl-ams-1")
    # inner.yaml (EU) would allow more than middle.yaml (DE): refused, nothing placed in NL
    assert r.code == 1, r.out
    assert "residency-widened" in r.err and "inner.yaml" in r.err
    # a narrowing inner template is placed inside every enclosing residency
    write(project / "inner.yaml", HOT + "placement:\n  residency: {countries: [DE]}\n"
          "resources:\n" + RESOURCE + "    properties: {size: 1}\n")
    r = run(project, "plan", "top.yaml", "--target", "sandbox-aws", "--format", "json")
    assert r.code == 0, r.err  # not the target's default us-east-1: the nested rules hold
    assert {(c["placement"]["target"], c["placement"]["region"])
            for c in r.json()["changes"]} == {("sandbox-aws", "eu-central-1")}


def test_kept_with_names_the_other_members(project: Path) -> None:
    plan = plan_json(project, "stack.yaml")
    for c in plan["changes"]:
        _, _, kept = c["placement"]["why"].partition("kept with ")
        assert c["address"] not in kept.split(" (")[0].split(", "), c["placement"]["why"]
