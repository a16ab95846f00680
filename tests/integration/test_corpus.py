"""The corpus of real-world-shaped HOT templates (tests/corpus/) through the real CLI.

Every corpus template validates (with and without its environment file) and
plans against the sandbox clouds with exactly the expected addresses, kinds and
placements; three of them apply and destroy cleanly (OpenStack, both OpenStack
regions, AWS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl import capabilities
from tests.integration.clitools import REPO, ec2, os_driver, run, stack_instances

CORPUS = REPO / "tests" / "corpus"
OS = "sandbox-openstack"
AWS = "sandbox-aws/eu-central-1"

SERVER = "Cloud::Compute::Server"
KEYPAIR = "Cloud::Compute::KeyPair"
NETWORK = "Cloud::Network::Network"
SUBNET = "Cloud::Network::Subnet"
PORT = "Cloud::Network::Port"
SECGROUP = "Cloud::Network::SecurityGroup"
FIP = "Cloud::Network::FloatingIP"
ROUTER = "Cloud::Network::Router"
ROUTER_INTERFACE = "Cloud::Network::RouterInterface"
VOLUME = "Cloud::Block::Volume"
ATTACH = "Cloud::Block::VolumeAttachment"

# the region each target places resources in when nothing narrows it
DEFAULT_REGION = {OS: ("sandbox-openstack", "de-fra-1"), AWS: ("sandbox-aws", "eu-central-1")}


@dataclass(frozen=True)
class Case:
    """A corpus template, how to plan it and what the plan must contain, in order."""

    name: str
    template: str
    resources: tuple[tuple[str, str], ...]  # (address, kind) in template order
    env: str | None = None
    targets: tuple[str, ...] = (OS, AWS)
    # address prefix -> (target, region) regardless of --target
    pinned: tuple[tuple[str, tuple[str, str]], ...] = ()


# a template with a router plans on AWS once AWS offers the router kinds
WITH_ROUTERS = (OS, AWS) if ROUTER in capabilities.CLOUDS["aws"].kinds else (OS,)


def group(name: str, kind: str, indexes: range | list[int]) -> list[tuple[str, str]]:
    return [(f"{name}.{i}", kind) for i in indexes]


CASES = [
    Case(
        "servers_in_new_net",
        "servers_in_new_net.yaml",
        (
            ("app_key", KEYPAIR),
            ("app_net", NETWORK),
            ("app_subnet", SUBNET),
            ("app_router", ROUTER),
            ("app_router_interface", ROUTER_INTERFACE),
            ("app_secgroup", SECGROUP),
            ("app1_port", PORT),
            ("app1", SERVER),
            ("app1_floating_ip", FIP),
            ("app2_port", PORT),
            ("app2", SERVER),
            ("app2_floating_ip", FIP),
        ),
        targets=WITH_ROUTERS,
    ),
    Case(
        "server_with_volume",
        "server_with_volume.yaml",
        (
            ("db_secgroup", SECGROUP),
            ("db_server", SERVER),
            ("db_volume", VOLUME),
            ("db_volume_attachment", ATTACH),
        ),
        env="server_with_volume.env.yaml",
    ),
    Case(
        "resource_groups",
        "resource_groups.yaml",
        (
            *group("worker_volumes", VOLUME, range(3)),
            *group("workers", SERVER, range(3)),
            *group("attachments", ATTACH, range(3)),
            *group("spares", VOLUME, [1, 2]),  # removal_policies removed member 0
            ("coordinator", SERVER),
        ),
    ),
    Case(
        "conditions_dev",
        "conditions.yaml",
        (("web", SERVER), ("debug_server", SERVER)),
    ),
    Case(
        "conditions_prod",
        "conditions.yaml",
        (
            ("web", SERVER),
            ("web_floating_ip", FIP),
            ("backup_volume", VOLUME),
            ("backup_attachment", ATTACH),
        ),
        env="conditions.prod.env.yaml",
    ),
    Case(
        "app_with_registry",
        "app_with_registry.yaml",
        (
            ("app_secgroup", SECGROUP),
            ("app_nodes.0.server", SERVER),
            ("app_nodes.0.disk.volume", VOLUME),
            ("app_nodes.0.disk.attachment", ATTACH),
            ("app_nodes.1.server", SERVER),
            ("app_nodes.1.disk.volume", VOLUME),
            ("app_nodes.1.disk.attachment", ATTACH),
            ("bastion.server", SERVER),
        ),
        env="app_with_registry.env.yaml",
    ),
    Case(
        "stack_in_two_regions",
        "stack_in_two_regions.yaml",
        (
            ("cache_fra.node", SERVER),
            ("cache_fra.store", VOLUME),
            ("cache_fra.store_attachment", ATTACH),
            ("cache_ams.node", SERVER),
            ("cache_ams.store", VOLUME),
            ("cache_ams.store_attachment", ATTACH),
        ),
        # context.region_name is the nested resources' own placement rule: it wins
        # over --target, so even an AWS target plans them on OpenStack
        pinned=(
            ("cache_fra.", ("sandbox-openstack", "de-fra-1")),
            ("cache_ams.", ("sandbox-openstack", "nl-ams-1")),
        ),
    ),
    Case(
        "parameter_groups",
        "parameter_groups.yaml",
        (("service_secgroup", SECGROUP), *group("service", SERVER, range(4))),
        env="parameter_groups.env.yaml",
    ),
    Case(
        "three_tier_library",
        "three_tier_library.yaml",
        (
            ("web.security_group", SECGROUP),
            ("web.servers.0", SERVER),
            ("web.servers.1", SERVER),
            ("db.security_group", SECGROUP),
            ("db.primary", SERVER),
            ("db.primary_volume", VOLUME),
            ("db.primary_attachment", ATTACH),
            ("db.replica", SERVER),
            ("db.replica_volume", VOLUME),
            ("db.replica_attachment", ATTACH),
        ),
    ),
]

TEMPLATES = sorted(
    p
    for p in [*CORPUS.glob("*.yaml"), *CORPUS.glob("nested/*.yaml")]
    if not p.name.endswith(".env.yaml")
)
ENVIRONMENTS = sorted(CORPUS.glob("*.env.yaml"))
NEEDS_REGISTRY = {"app_with_registry.yaml"}
HEAT_VERSIONS = {"2013-05-23", "2015-10-15", "2016-10-14", "2018-08-31", "wallaby"}


def case_id(case: Case) -> str:
    return case.name


@pytest.fixture
def project(tmp_path: Path, aws_reset: dict[str, Any], openstack_reset: dict[str, Any]) -> Path:
    """An empty project directory (state in it); the corpus is used where it lies."""
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    return tmp_path


def env_args(env: str | None) -> list[str]:
    return ["-e", str(CORPUS / env)] if env else []


def test_corpus_covers_what_it_claims() -> None:
    """Each top-level template has a case, each environment is used, the versions span."""
    top = {p.name for p in TEMPLATES if p.parent == CORPUS}
    assert top == {c.template for c in CASES}
    assert {p.name for p in ENVIRONMENTS} == {c.env for c in CASES if c.env}
    versions = set()
    for path in TEMPLATES:
        first = path.read_text().splitlines()[0]
        versions.add(first.partition(":")[2].strip())
    assert versions >= HEAT_VERSIONS


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_template_validates(tmp_path: Path, path: Path) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    r = run(tmp_path, "validate", str(path), "--format", "json")
    if path.name in NEEDS_REGISTRY:  # its types exist only in its environment's registry
        assert r.code == 1, r.out + r.err
        assert {d["code"] for d in r.json()["diagnostics"]} == {"unknown-resource-type"}
    else:
        assert r.code == 0, r.out + r.err
        assert r.json() == {"valid": True, "diagnostics": []}
    for case in CASES:
        if case.env and case.template == path.name:
            r = run(tmp_path, "validate", str(path), *env_args(case.env), "--format", "json")
            assert r.code == 0, r.out + r.err
            assert r.json() == {"valid": True, "diagnostics": []}


@pytest.mark.parametrize(
    ("case", "target"),
    [(c, t) for c in CASES for t in c.targets],
    ids=[f"{c.name}-{t.split('/')[0]}" for c in CASES for t in c.targets],
)
def test_every_corpus_template_plans(project: Path, case: Case, target: str) -> None:
    r = run(
        project,
        "plan",
        str(CORPUS / case.template),
        *env_args(case.env),
        "--target",
        target,
        "--format",
        "json",
    )
    assert r.code == 0, r.out + r.err
    plan = r.json()
    assert plan["stack"] == Path(case.template).stem
    got = [(c["address"], c["kind"]) for c in plan["changes"]]
    assert got == list(case.resources)
    assert {c["action"] for c in plan["changes"]} == {"create"}
    assert plan["summary"]["create"] == len(case.resources)
    for change in plan["changes"]:
        where = DEFAULT_REGION[target]
        for prefix, pinned in case.pinned:
            if change["address"].startswith(prefix):
                where = pinned
        placement = change["placement"]
        assert (placement["target"], placement["region"]) == where, change["address"]
        assert placement["country"] in {"DE", "NL"}
        assert placement["jurisdiction"] == "EU"


def test_hidden_parameters_stay_out_of_the_plan(project: Path) -> None:
    r = run(
        project,
        "plan",
        str(CORPUS / "server_with_volume.yaml"),
        *env_args("server_with_volume.env.yaml"),
        "--target",
        AWS,
        "--format",
        "json",
    )
    assert r.code == 0, r.out + r.err
    assert "correct-horse-battery" not in r.out + r.err
    server = next(c for c in r.json()["changes"] if c["address"] == "db_server")
    user_data = next(d for d in server["diff"] if d["property"] == "user_data")
    assert str(user_data["new"]).startswith("(sensitive)")


def test_constraints_reject_bad_values(tmp_path: Path) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    r = run(
        tmp_path,
        "validate",
        str(CORPUS / "parameter_groups.yaml"),
        *env_args("parameter_groups.env.yaml"),
        "-p",
        "replicas=3",
        "-p",
        "service_name=Bad_Name",
        "-p",
        "api_token=short-secret",
        "--format",
        "json",
    )
    assert r.code == 1, r.out + r.err
    out = r.json()
    assert out["valid"] is False
    assert [(d["code"], d["file"]) for d in out["diagnostics"]] == [
        ("parameter-constraint", f"<command line: -p {name}>")
        for name in ("api_token", "replicas", "service_name")
    ]
    assert "short-secret" not in r.out + r.err  # hidden: never shown


# -- apply and destroy --------------------------------------------------------------
def os_nodes(sandbox: dict[str, Any], region: str, stack: str) -> list[Any]:
    return [
        n
        for n in os_driver(sandbox, region).list_nodes()
        if (n.extra.get("metadata") or {}).get("cloudtmpl:stack") == stack
    ]


def os_volumes(sandbox: dict[str, Any], region: str, stack: str) -> list[Any]:
    return [
        v
        for v in os_driver(sandbox, region).list_volumes()
        if (v.name or "").startswith(f"{stack}.")
    ]


def apply_then_destroy(project: Path, args: list[str], stack: str) -> dict[str, Any]:
    """Apply, check the re-plan is empty, destroy; the outputs seen in between."""
    r = run(project, "apply", *args, "--yes")
    assert r.code == 0, r.err + r.out
    outputs: dict[str, Any] = run(project, "outputs", "-s", stack, "--format", "json").json()
    r = run(project, "plan", *args, "--detailed-exitcode")
    assert r.code == 0, r.out + r.err  # converged: no changes
    return outputs


def destroy(project: Path, args: list[str], stack: str) -> None:
    r = run(project, "destroy", *args, "-s", stack, "--yes")
    assert r.code == 0, r.err + r.out
    r = run(project, "plan", *args, "--format", "json")
    assert r.code == 0, r.out + r.err
    assert {c["action"] for c in r.json()["changes"]} == {"create"}


def test_servers_in_new_net_applies_and_destroys_on_openstack(
    project: Path, openstack_reset: dict[str, Any]
) -> None:
    stack = "servers_in_new_net"
    args = [str(CORPUS / "servers_in_new_net.yaml"), "--target", OS]
    out = apply_then_destroy(project, args, stack)
    assert out["app1_private_ip"].startswith("10.0.20.")
    assert out["app2_private_ip"].startswith("10.0.20.")
    assert out["app1_public_ip"] and out["app1_public_ip"] != out["app2_public_ip"]
    assert out["subnet_cidr"] == "10.0.20.0/24"
    nodes = os_nodes(openstack_reset, "de-fra-1", stack)
    assert sorted(n.extra["metadata"]["cloudtmpl:resource"] for n in nodes) == ["app1", "app2"]
    destroy(project, args, stack)
    assert os_nodes(openstack_reset, "de-fra-1", stack) == []


def test_stack_in_two_regions_applies_and_destroys_on_openstack(
    project: Path, openstack_reset: dict[str, Any]
) -> None:
    stack = "stack_in_two_regions"
    args = [str(CORPUS / "stack_in_two_regions.yaml"), "--target", OS]
    out = apply_then_destroy(project, args, stack)
    assert set(out["cache_addresses"]) == {"fra", "ams"}
    for region, site in (("de-fra-1", "fra"), ("nl-ams-1", "ams")):
        (node,) = os_nodes(openstack_reset, region, stack)
        assert node.extra["metadata"]["site"] == site
        assert out["cache_addresses"][site] in node.private_ips
        (volume,) = os_volumes(openstack_reset, region, stack)
        assert volume.size == 4
    destroy(project, args, stack)
    for region in ("de-fra-1", "nl-ams-1"):
        assert os_nodes(openstack_reset, region, stack) == []
        assert os_volumes(openstack_reset, region, stack) == []


def test_server_with_volume_applies_and_destroys_on_aws(
    project: Path, aws_reset: dict[str, Any]
) -> None:
    stack = "server_with_volume"
    args = [
        str(CORPUS / "server_with_volume.yaml"),
        *env_args("server_with_volume.env.yaml"),
        "--target",
        AWS,
    ]
    out = apply_then_destroy(project, args, stack)
    assert out["db_volume_size"] == 3
    assert out["open_ports"] == "22,5432"
    (instance,) = stack_instances(aws_reset, "eu-central-1", stack)
    assert instance["InstanceType"] == "t3.micro"  # flavor tiny from parameter_defaults
    client = ec2(aws_reset, "eu-central-1")
    (volume,) = client.describe_volumes(VolumeIds=[out["db_volume_id"]])["Volumes"]
    assert volume["Size"] == 3
    assert [a["InstanceId"] for a in volume["Attachments"]] == [instance["InstanceId"]]
    destroy(project, args, stack)
    assert stack_instances(aws_reset, "eu-central-1", stack) == []
    left = client.describe_volumes(
        Filters=[{"Name": "tag:cloudtmpl:stack", "Values": [stack]}]
    )["Volumes"]
    assert left == []
