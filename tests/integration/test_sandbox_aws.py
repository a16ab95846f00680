"""The AWS sandbox through libcloud's real, unpatched drivers.

Each test pins one rewrite of ``cloudtmpl_sandbox.aws``'s compatibility layer:
without it the libcloud call shown returns wrong data, False, or raises.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import LibcloudError
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.types import KeyPairDoesNotExistError

from cloudtmpl_sandbox import aws_compat as sandbox_aws
from cloudtmpl_sandbox import control, manager
from cloudtmpl_sandbox.serving import check_loopback
from tests.integration.ec2tools import CATALOG, ec2, image, size

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"
REJECTED = (LibcloudError, BaseHTTPError)
AMIS: dict[tuple[str, str], str] = {}  # (region, abstract image) -> AMI: catalog_amis


@pytest.fixture(autouse=True, scope="module")
def _amis(catalog_amis: dict[tuple[str, str], str]) -> None:
    AMIS.update(catalog_amis)


def counter(info: dict[str, Any]) -> dict[str, Any]:
    return _get_json(info, "/_sandbox/requests")


def signed_v4(info: dict[str, Any], params: dict[str, str], method: str = "GET",
              service: str = "ec2", region: str = "us-east-1") -> urllib.request.Request:
    """A plain HTTP request to the sandbox signed with its own key (botocore's SigV4)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = urllib.parse.urlencode(params)
    url = info["endpoint"] + "/" + ("?" + body if method == "GET" else "")
    headers = {} if method == "GET" else {"Content-Type": _FORM}
    req = AWSRequest(method=method, url=url, data=None if method == "GET" else body,
                     headers=headers)
    SigV4Auth(Credentials(info["access_key"], info["secret_key"]), service,
              region).add_auth(req)
    return urllib.request.Request(url, data=None if method == "GET" else body.encode(),
                                  headers=dict(req.headers.items()), method=method)


def signed_v2_form(info: dict[str, Any], params: dict[str, str],
                   secret: str | None = None) -> urllib.request.Request:
    """A Signature V2 form POST, signed as AWS documents it (HmacSHA256 over
    POST, host, path and the sorted, encoded parameters)."""
    import base64
    import hashlib
    import hmac

    host = info["endpoint"].removeprefix("http://")
    full = {**params, "AWSAccessKeyId": info["access_key"], "SignatureVersion": "2",
            "SignatureMethod": "HmacSHA256",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    canonical = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}="
                         f"{urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(full.items()))
    mac = hmac.new((secret or info["secret_key"]).encode(),
                   f"POST\n{host}\n/\n{canonical}".encode(), hashlib.sha256)
    full["Signature"] = base64.b64encode(mac.digest()).decode()
    return urllib.request.Request(info["endpoint"] + "/",
                                  data=urllib.parse.urlencode(full).encode(),
                                  headers={"Content-Type": _FORM + "; charset=utf-8"},
                                  method="POST")


_FORM = "application/x-www-form-urlencoded"


# --------------------------------------------------------------- pure rewrite helpers


def test_shift_zero_indexes_only_touches_zero_based_lists() -> None:
    pairs = [
        ("Action", "CreateTags"),
        ("ResourceId.0", "vol-1"),
        ("Tag.0.Key", "a"),
        ("Tag.0.Value", "b"),
        ("Tag.1.Key", "c"),
        ("Filter.1.Value.1", "x"),
    ]
    assert sandbox_aws.shift_zero_indexes(pairs) == [
        ("Action", "CreateTags"),
        ("ResourceId.1", "vol-1"),
        ("Tag.1.Key", "a"),
        ("Tag.1.Value", "b"),
        ("Tag.2.Key", "c"),
        ("Filter.1.Value.1", "x"),
    ]


def test_bare_scalar_lists_are_numbered() -> None:
    sandbox_aws.EC2_MODEL.load()
    names = sandbox_aws.EC2_MODEL.scalar_lists["DescribeKeyPairs"]
    assert "KeyName" in names
    assert sandbox_aws.number_bare_lists([("KeyName", "k2")], names) == [("KeyName.1", "k2")]
    assert "CreateTags" in sandbox_aws.EC2_MODEL.returns_bool
    assert "RunInstances" not in sandbox_aws.EC2_MODEL.returns_bool


def test_refuses_non_loopback_host() -> None:
    assert check_loopback("127.0.0.1") == "127.0.0.1"
    assert check_loopback("::1") == "::1"
    with pytest.raises(SystemExit):
        check_loopback("0.0.0.0")
    with pytest.raises(SystemExit):
        check_loopback("192.168.1.10")


# ------------------------------------------------------------------------------- EC2


def test_create_and_list_nodes_round_trip_tags(aws_reset: dict[str, Any]) -> None:
    # namespace trailing slash: without it list_nodes parses to [].
    d = ec2(aws_reset)
    node = d.create_node(
        name="web-0",
        image=image(d, AMIS),
        size=size(d),
        ex_metadata={"cloudtmpl:stack": "demo", "cloudtmpl:resource": "web"},
    )
    nodes = d.list_nodes()
    assert [n.id for n in nodes] == [node.id]
    listed = nodes[0]
    assert listed.name == "web-0"
    assert listed.extra["tags"] == {
        "Name": "web-0",
        "cloudtmpl:stack": "demo",
        "cloudtmpl:resource": "web",
    }
    assert listed.extra["instance_type"] == "t3.micro"
    assert listed.extra["image_id"] == AMIS[("us-east-1", "ubuntu-22.04")]


def test_volume_tags_detach_and_delete(aws_reset: dict[str, Any]) -> None:
    d = ec2(aws_reset)
    zone = d.list_locations()[0]
    # create_volume with a name = CreateVolume + CreateTags with 0-based indexes.
    vol = d.create_volume(8, "data-0", location=zone)
    assert d.ex_create_tags(vol, {"cloudtmpl:stack": "demo"}) is True
    [listed] = d.list_volumes()
    assert listed.id == vol.id
    assert listed.extra["tags"] == {"Name": "data-0", "cloudtmpl:stack": "demo"}

    node = d.create_node(name="db", image=image(d, AMIS), size=size(d), location=zone)
    assert d.attach_volume(node, vol, "/dev/sdh") is True
    # DetachVolume without InstanceId crashes moto unless the layer adds it.
    assert d.detach_volume(vol) is True
    [after] = [v for v in d.list_volumes() if v.id == vol.id]
    assert after.extra.get("instance_id") in (None, "")
    # DeleteVolume/DeleteSecurityGroup/RebootInstances need <return>true</return>.
    assert d.destroy_volume(vol) is True
    assert d.list_volumes() == [] or all(v.id != vol.id for v in d.list_volumes())
    assert d.reboot_node(node) is True


def test_security_group_and_address_booleans(aws_reset: dict[str, Any]) -> None:
    d = ec2(aws_reset)
    d.ex_create_security_group("sg-demo", "demo group")
    assert d.ex_delete_security_group("sg-demo") is True
    node = d.create_node(name="ip", image=image(d, AMIS), size=size(d))
    ip = d.ex_allocate_address()
    assert d.ex_associate_address_with_node(node, ip)
    assert d.ex_disassociate_address(ip) is True
    assert d.ex_release_address(ip) is True


def test_get_key_pair_names_the_right_key(aws_reset: dict[str, Any]) -> None:
    d = ec2(aws_reset)
    d.create_key_pair("k1")
    d.create_key_pair("k2")
    # bare KeyName → KeyName.1: otherwise moto returns every key and libcloud picks k1.
    assert d.get_key_pair("k2").name == "k2"
    assert d.get_key_pair("k1").name == "k1"
    with pytest.raises(KeyPairDoesNotExistError) as err:
        d.get_key_pair("missing-key")
    # set-printed names ('{'missing-key'}') are rewritten so libcloud names the key.
    assert err.value.name == "missing-key"


def test_validation_rejects_bogus_ami_type_and_key(aws_reset: dict[str, Any]) -> None:
    d = ec2(aws_reset)
    with pytest.raises(REJECTED, match="InvalidAMIID"):
        d.create_node(name="x", image=NodeImage("ami-00000000", "bogus", d), size=size(d))
    with pytest.raises(REJECTED, match="InvalidInstanceType"):
        d.create_node(name="x", image=image(d, AMIS),
                      size=NodeSize("t9.enormous", "x", 0, 0, 0, 0.0, d))
    with pytest.raises(KeyPairDoesNotExistError) as err:
        d.create_node(name="x", image=image(d, AMIS), size=size(d), ex_keyname="no-such-key")
    assert err.value.name == "no-such-key"
    assert d.list_nodes() == []


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1"])
def test_catalog_images_and_sizes_run(aws_reset: dict[str, Any], region: str) -> None:
    d = ec2(aws_reset, region)
    for name, entry in CATALOG["images"].items():
        # the catalog's filter, asked the way libcloud asks (Owner.1, Filter.1.Name=name)
        found = d.list_images(ex_owner=entry["owner"], ex_filters={"name": entry["name"]})
        assert found, f"{name}: {entry} matches no image in {region}"
        for img in found:
            assert fnmatch.fnmatchcase(img.name, entry["name"]), img.name
            assert entry["owner"] in (img.extra["owner_id"], img.extra["owner_alias"])
        newest = max(found, key=lambda i: (i.extra["creation_date"], i.name, i.id))
        assert newest.id == AMIS[(region, name)]
        assert d.list_images(ex_owner="123456789012", ex_filters={"name": entry["name"]}) == []
        node = d.create_node(name=f"img-{name}", image=newest, size=size(d))
        assert node.extra["image_id"] == newest.id
    # distinct AMIs: changing the abstract image changes the server's image
    assert len({AMIS[(region, name)] for name in CATALOG["images"]}) == len(CATALOG["images"])
    for abstract in CATALOG["sizes"]:
        d.create_node(name=f"size-{abstract}", image=image(d, AMIS, region), size=size(d, abstract))
    assert len(d.list_nodes()) == len(CATALOG["images"]) + len(CATALOG["sizes"])


def _describe_all(d: Any, max_results: str) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    params = {"Action": "DescribeInstances", "MaxResults": max_results}
    while True:
        body = d.connection.request("/", params=dict(params)).object
        pages += 1
        ids += [
            e.text
            for e in body.iterfind(
                f"{NS}reservationSet/{NS}item/{NS}instancesSet/{NS}item/{NS}instanceId"
            )
        ]
        token = body.findtext(f"{NS}nextToken")
        if not token:
            return ids, pages
        params["NextToken"] = token


def test_describe_instances_pagination_150(aws_reset: dict[str, Any]) -> None:
    d = ec2(aws_reset)
    started = time.monotonic()
    created = {d.create_node(name=f"n{i}", image=image(d, AMIS), size=size(d)).id
               for i in range(150)}
    elapsed = time.monotonic() - started
    assert len(created) == 150
    # libcloud's list_nodes ignores NextToken: the layer lifts moto's 100 page size.
    assert {n.id for n in d.list_nodes()} == created
    # explicit MaxResults/NextToken pass through: our discovery's way.
    ids, pages = _describe_all(d, "1000")
    assert set(ids) == created and len(ids) == 150 and pages == 1
    ids, pages = _describe_all(d, "60")
    assert set(ids) == created and len(ids) == 150 and pages == 3
    print(f"150 RunInstances in {elapsed:.2f}s")


def test_regions_are_isolated(aws_reset: dict[str, Any]) -> None:
    us, eu = ec2(aws_reset, "us-east-1"), ec2(aws_reset, "eu-central-1")
    node = eu.create_node(name="fra", image=image(eu, AMIS, "eu-central-1"), size=size(eu))
    assert [n.id for n in eu.list_nodes()] == [node.id]
    assert us.list_nodes() == []
    assert {loc.availability_zone.name[:-1] for loc in eu.list_locations()} == {"eu-central-1"}
    assert node.extra["availability"].startswith("eu-central-1")


def test_sigv2_driver_gets_correct_answers(aws_reset: dict[str, Any]) -> None:
    # no Authorization header: the layer adds a dummy SigV4 one naming ec2.
    d = ec2(aws_reset, sigv4=False)
    assert d.connection.signature_version == "2"
    node = d.create_node(name="v2", image=image(d, AMIS), size=size(d), ex_metadata={"k": "v"})
    [listed] = d.list_nodes()
    assert listed.id == node.id and listed.extra["tags"] == {"Name": "v2", "k": "v"}
    d.create_key_pair("v2key")
    assert d.get_key_pair("v2key").name == "v2key"
    assert ec2(aws_reset).list_nodes()[0].id == node.id  # same us-east-1 backend


def test_form_body_post_is_rewritten_too(aws_reset: dict[str, Any]) -> None:
    # A SigV2 form POST (no Authorization header) with 0-based lists and a
    # bare scalar list, as some clients send it.
    d = ec2(aws_reset)
    vol = d.create_volume(8, "posted", location=d.list_locations()[0])
    form = {
        "Action": "CreateTags",
        "Version": "2016-11-15",
        "ResourceId.0": vol.id,
        "Tag.0.Key": "k0",
        "Tag.0.Value": "v0",
        "Tag.1.Key": "k1",
        "Tag.1.Value": "v1",
    }
    with urllib.request.urlopen(signed_v2_form(aws_reset, form), timeout=30) as resp:
        body = resp.read().decode()
    assert f'xmlns="{NS[1:-1]}"' in body and "<return>true</return>" in body
    [listed] = d.list_volumes()
    assert listed.extra["tags"] == {"Name": "posted", "k0": "v0", "k1": "v1"}


def _tag_spec(resource_type: str, tags: dict[str, str]) -> dict[str, str]:
    params = {"TagSpecification.1.ResourceType": resource_type}
    for i, (key, value) in enumerate(tags.items(), 1):
        params[f"TagSpecification.1.Tag.{i}.Key"] = key
        params[f"TagSpecification.1.Tag.{i}.Value"] = value
    return params


def test_raw_tag_specification_on_create(aws_reset: dict[str, Any]) -> None:
    """How an adapter tags volumes, EIPs, security groups, VPCs atomically."""
    d = ec2(aws_reset, "eu-central-1")
    tags = {"cloudtmpl:stack": "demo", "Name": "demo-x"}
    creates = [
        ("CreateVolume", {"Size": "8", "AvailabilityZone": "eu-central-1a"}, "volume"),
        ("AllocateAddress", {"Domain": "vpc"}, "elastic-ip"),
        ("CreateSecurityGroup", {"GroupName": "g", "GroupDescription": "d"}, "security-group"),
        ("CreateVpc", {"CidrBlock": "10.1.0.0/16"}, "vpc"),
    ]
    for action, params, resource_type in creates:
        d.connection.request(
            "/", params={"Action": action, **params, **_tag_spec(resource_type, tags)}
        )
    body = d.connection.request(
        "/",
        params={
            "Action": "DescribeTags",
            "Filter.1.Name": "key",
            "Filter.1.Value.1": "cloudtmpl:stack",
        },
    ).object
    ids = [e.findtext(f"{NS}resourceId") for e in body.iterfind(f"{NS}tagSet/{NS}item")]
    prefixes = sorted(i.split("-")[0] for i in ids)
    assert prefixes == ["eipalloc", "sg", "vol", "vpc"]


def test_boto3_works_through_the_layer(aws_reset: dict[str, Any]) -> None:
    import boto3

    client = boto3.client(
        "ec2",
        region_name="eu-central-1",
        endpoint_url=aws_reset["endpoint"],
        aws_access_key_id=aws_reset["access_key"],
        aws_secret_access_key=aws_reset["secret_key"],
    )
    client.run_instances(
        ImageId=AMIS[("eu-central-1", "amazon-linux-2023")],
        InstanceType="t3.small",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}],
    )
    [res] = client.describe_instances()["Reservations"]
    assert res["Instances"][0]["Tags"] == [{"Key": "a", "Value": "b"}]
    assert ec2(aws_reset, "eu-central-1").list_nodes()[0].extra["tags"] == {"a": "b"}


def test_request_counter(aws_reset: dict[str, Any]) -> None:
    assert counter(aws_reset) == {"total": 0, "by_service": {}}
    d = ec2(aws_reset)
    d.create_node(name="c", image=image(d, AMIS), size=size(d))  # RunInstances
    assert counter(aws_reset) == {"total": 1, "by_service": {"ec2": 1}}
    d.list_nodes()  # DescribeInstances + DescribeAddresses (only sent when nodes exist)
    assert counter(aws_reset) == {"total": 3, "by_service": {"ec2": 3}}
    assert control.call(aws_reset["endpoint"], aws_reset["token"], "POST",
                        "/_sandbox/requests/reset")[0] == 200
    assert counter(aws_reset) == {"total": 0, "by_service": {}}


# -------------------------------------------------------------------- Route53 / ELB


def test_route53_zone_and_record(aws_reset: dict[str, Any]) -> None:
    from libcloud.dns.providers import get_driver as dns_driver
    from libcloud.dns.types import Provider as DNSProvider
    from libcloud.dns.types import RecordType

    port = int(aws_reset["endpoint"].rsplit(":", 1)[1])
    r53: Any = dns_driver(DNSProvider.ROUTE53)(
        "sandbox", "sandbox", host="127.0.0.1", port=port, secure=False
    )
    zone = r53.create_zone("example.com.")
    assert [z.domain for z in r53.list_zones()] == ["example.com."]
    r53.create_record("www", zone, RecordType.A, "10.0.0.1", extra={"ttl": 300})
    assert ("www", "10.0.0.1") in {(r.name, r.data) for r in r53.list_records(zone)}
    assert counter(aws_reset)["by_service"]["route53"] >= 3


def test_classic_elb(aws_reset: dict[str, Any]) -> None:
    from libcloud.loadbalancer.providers import get_driver as lb_driver
    from libcloud.loadbalancer.types import Provider as LBProvider

    port = int(aws_reset["endpoint"].rsplit(":", 1)[1])
    elb: Any = lb_driver(LBProvider.ELB)("sandbox", "sandbox", "eu-central-1")
    elb.connection.host, elb.connection.port, elb.connection.secure = "127.0.0.1", port, False
    elb.connection.connect()
    assert elb.connection.host == "127.0.0.1"
    elb.create_balancer("lb-demo", 80, "http", None, [])
    assert [b.name for b in elb.list_balancers()] == ["lb-demo"]
    assert counter(aws_reset)["by_service"] == {"elasticloadbalancing": 2}


# ------------------------------------------------------------------------- manager


def _process_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_manager_start_is_idempotent_and_stop_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDTMPL_SANDBOX_DIR", str(tmp_path))
    assert manager.sandbox_dir() == tmp_path
    assert manager.status()["aws"]["running"] is False
    try:
        started = time.monotonic()
        first = manager.start()["aws"]
        print(f"sandbox start: {time.monotonic() - started:.2f}s")
        second = manager.start()["aws"]
        assert second["pid"] == first["pid"] and second["endpoint"] == first["endpoint"]
        st = manager.status()["aws"]
        assert st["running"] is True and st["pid"] == first["pid"]
        assert {"us-east-1", "eu-central-1"} <= set(st["regions"])
        assert st["endpoint"].startswith("http://127.0.0.1:")
        assert (tmp_path / "aws.json").exists()
        assert _process_running(first["pid"])
    finally:
        stopped = manager.stop()
    assert stopped is True
    assert not _process_running(first["pid"])
    assert manager.status()["aws"]["running"] is False
    assert not (tmp_path / "aws.json").exists()
    assert manager.stop() is False


def test_concurrent_starts_spawn_one_server(tmp_path: Path) -> None:
    code = (
        "import json,sys; from pathlib import Path; from cloudtmpl_sandbox import manager;"
        "print(json.dumps(manager.start(Path(sys.argv[1]))['aws']))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    try:
        outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
        assert outs[0]["pid"] == outs[1]["pid"]
    finally:
        manager.stop(tmp_path)
    for out in outs:
        assert not _process_running(out["pid"])


def test_server_refuses_public_bind() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cloudtmpl_sandbox.aws", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode != 0
    assert "loopback" in proc.stderr


# ------------------------------------------------------------------------ fault knobs


def _knobs(info: dict[str, Any], data: dict[str, Any] | None = None,
           path: str = "/_sandbox/config") -> tuple[int, dict[str, Any]]:
    status, body = control.call(info["endpoint"], info["token"], "POST", path, data or {})
    return status, body


@pytest.fixture
def faulty(aws_reset: dict[str, Any]) -> Any:
    """The AWS sandbox with knobs set by the test; defaults restored afterwards."""
    yield aws_reset
    assert _knobs(aws_reset, path="/_sandbox/config/reset")[0] == 200


def _raw_ec2(info: dict[str, Any], action: str = "DescribeKeyPairs") -> tuple[int, bytes]:
    """One EC2 query through plain HTTP, signed with the sandbox's key: (status, body)."""
    req = signed_v4(info, {"Action": action, "Version": "2016-11-15"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize(
    ("knobs", "status", "code"),
    [
        ({"failure_rate": 1, "failure_status": 500}, 500, "InternalError"),
        ({"failure_rate": 1, "failure_status": 503}, 503, "ServiceUnavailable"),
        ({"throttle_rate": 1}, 503, "RequestLimitExceeded"),  # EC2's throttling answer
        ({"throttle_rate": 1, "throttle_status": 400}, 400, "Throttling"),
    ],
)
def test_injected_errors_are_aws_shaped_and_libcloud_reads_them(
    faulty: dict[str, Any], knobs: dict[str, Any], status: int, code: str
) -> None:
    from cloudtmpl.providers.retry import classify

    assert _knobs(faulty, knobs)[0] == 200
    got, body = _raw_ec2(faulty)
    assert got == status
    root = ET.fromstring(body)
    assert root.tag == "Response" and root.findtext("Errors/Error/Code") == code
    assert root.findtext("Errors/Error/Message") and root.findtext("RequestID")
    with pytest.raises(BaseHTTPError) as exc:  # libcloud parses the error like a real one
        ec2(faulty).list_key_pairs()
    assert code in str(exc.value)
    assert classify(exc.value).retryable, "the retry helper must treat it as transient"
    faults = _get_json(faulty, "/_sandbox/faults")
    assert sum(faults.values()) == 2


def test_dropped_connections_get_no_response(faulty: dict[str, Any]) -> None:
    import requests

    from cloudtmpl.providers.retry import classify

    _knobs(faulty, {"drop_rate": 1})
    d = ec2(faulty)
    with pytest.raises(requests.exceptions.ConnectionError) as exc:
        d.list_key_pairs()
    assert classify(exc.value).retryable, repr(exc.value)
    with pytest.raises((ConnectionError, OSError)):  # plain HTTP: no status line at all
        _raw_ec2(faulty)
    # drop *before*: the request never took effect
    with pytest.raises(requests.exceptions.ConnectionError):
        d.create_key_pair("before")
    # drop *after*: it took effect, but the client never learnt so
    _knobs(faulty, {"drop_after": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        d.create_key_pair("after")
    _knobs(faulty, {"drop_rate": 0})
    assert [k.name for k in d.list_key_pairs()] == ["after"]
    assert _get_json(faulty, "/_sandbox/faults") == {"drop_before": 3, "drop_after": 1}


def test_faults_spare_the_admin_endpoints_and_latency_applies(faulty: dict[str, Any]) -> None:
    _knobs(faulty, {"failure_rate": 1, "drop_rate": 1, "throttle_rate": 1})
    assert counter(faulty)["total"] == 0  # /_sandbox/* answers, and is not counted
    # /moto-api/* answers too
    assert control.call(faulty["endpoint"], faulty["token"], "POST", "/moto-api/reset")[0] == 200
    _knobs(faulty, {"failure_rate": 0, "drop_rate": 0, "throttle_rate": 0, "latency_ms": 200})
    started = time.monotonic()
    assert _raw_ec2(faulty)[0] == 200
    assert time.monotonic() - started >= 0.2


def test_seeded_faults_repeat_and_rates_are_shares(faulty: dict[str, Any]) -> None:
    def run() -> list[int]:
        _knobs(faulty, {"seed": 7, "failure_rate": 0.3, "throttle_rate": 0.2})
        return [_raw_ec2(faulty)[0] for _ in range(60)]

    first, second = run(), run()
    assert first == second  # same seed, same sequence of faults
    failed = sum(1 for s in first if s != 200)
    assert 10 <= failed <= 50 and {500, 503} & set(first)


def test_bad_knobs_are_refused_whole(faulty: dict[str, Any]) -> None:
    before = _get_json(faulty, "/_sandbox/config")
    for bad in ({"bogus": 1}, {"drop_rate": 2}, {"failure_status": 404},
                {"latency_ms": -1, "failure_rate": 0.5}, {"throttle_status": 500}):
        status, body = _knobs(faulty, bad)
        assert status == 400 and body["error"], bad
    assert _get_json(faulty, "/_sandbox/config") == before  # all or nothing
    status, body = _knobs(faulty, {"failure_rate": 0.5, "failure_status": None})
    assert status == 200 and body["failure_rate"] == 0.5 and body["failure_status"] is None
    assert _knobs(faulty, path="/_sandbox/config/reset")[1]["failure_rate"] == 0


def _get_json(info: dict[str, Any], path: str) -> dict[str, Any]:
    status, data = control.call(info["endpoint"], info["token"], "GET", path, timeout=10)
    assert status == 200, (path, status, data)
    return dict(data)


def test_client_token_makes_run_instances_idempotent(faulty: dict[str, Any]) -> None:
    """As on EC2: a retry with the same ClientToken returns the first instance, even when
    the first answer was lost (a drop after the request took effect)."""
    import boto3
    import botocore.config

    client = boto3.client(
        "ec2", region_name="us-east-1", endpoint_url=faulty["endpoint"],
        aws_access_key_id=faulty["access_key"], aws_secret_access_key=faulty["secret_key"],
        config=botocore.config.Config(retries={"max_attempts": 1}))
    kwargs = {"ImageId": AMIS[("us-east-1", "ubuntu-22.04")], "InstanceType": "t3.micro",
              "MinCount": 1, "MaxCount": 1, "ClientToken": "token-1"}
    _knobs(faulty, {"drop_rate": 1, "drop_after": 1})
    with pytest.raises(Exception):  # noqa: B017 - botocore's ConnectionClosedError
        client.run_instances(**kwargs)
    _knobs(faulty, {"drop_rate": 0})
    first = client.run_instances(**kwargs)["Instances"][0]["InstanceId"]
    again = client.run_instances(**kwargs)["Instances"][0]["InstanceId"]
    other = client.run_instances(**{**kwargs, "ClientToken": "token-2"})["Instances"][0]
    instances = [i["InstanceId"] for r in client.describe_instances()["Reservations"]
                 for i in r["Instances"]]
    assert first == again and sorted(instances) == sorted([first, other["InstanceId"]])
    vol = {"AvailabilityZone": "us-east-1a", "Size": 1, "ClientToken": "vol-token"}
    assert client.create_volume(**vol)["VolumeId"] == client.create_volume(**vol)["VolumeId"]
    assert len([v for v in client.describe_volumes()["Volumes"] if not v["Attachments"]]) == 1
