"""create_before_destroy on both sandbox clouds: the address moves to the replacement
before the old server is drained and deleted, and never points at nothing.

While ``apply`` replaces the server, a thread asks the cloud over and over where the
address points (EC2 DescribeAddresses + DescribeInstances, Neutron floating IP + port
+ Nova server): it must always be a running server.  The order is checked in the JSON
event stream, and on the sshd-backed servers' own clocks (booted, drained, halted).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import ec2, invoke, run, write
from tests.integration.hooks import events, roots, stamp

pytestmark = pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server "
                                "(scripts/test.sh installs it)")

TEMPLATE = """\
heat_template_version: 2021-04-16
parameters:
  image: {{type: string, default: {image}}}
placement: {{provider: {target}, region: {region}}}
resources:
  key: {{type: Cloud::Compute::KeyPair}}
  web:
    type: Cloud::Compute::Server
    lifecycle:
      create_before_destroy: true
      pre_replace:
        script: 'date +%s.%N > "$SERVER_ROOT/drained"; echo drained'
        timeout: 60
        ssh: {{key_pair: cbd.key}}
    properties: {{image: {{get_param: image}}, flavor: tiny, key_name: {{get_resource: key}}}}
  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {{server: {{get_resource: web}}, floating_network: public}}
"""

CLOUDS = {
    "aws": dict(target="sandbox-aws", region="eu-central-1", image="ubuntu-22.04",
                other="ubuntu-20.04"),
    "openstack": dict(target="sandbox-openstack", region="de-fra-1", image="ubuntu-22.04",
                      other="debian-12"),
}


class AwsAddress:
    """Where the stack's elastic IP points: (instance id, its state), or (None, '')."""

    def __init__(self, sandbox: dict[str, Any], region: str) -> None:
        self.client = ec2(sandbox, region)
        [eip] = self.client.describe_addresses(
            Filters=[{"Name": "tag:cloudtmpl:stack", "Values": ["cbd"]}])["Addresses"]
        self.allocation = eip["AllocationId"]

    def target(self) -> str | None:
        [eip] = self.client.describe_addresses(AllocationIds=[self.allocation])["Addresses"]
        return eip.get("InstanceId")

    def state(self, server: str) -> str:
        found = self.client.describe_instances(InstanceIds=[server])["Reservations"]
        return str(found[0]["Instances"][0]["State"]["Name"]) if found else "gone"

    running = "running"


class OpenStackAddress:
    """Where the stack's floating IP points: the Nova server behind its port."""

    def __init__(self, sandbox: dict[str, Any], region: str) -> None:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": sandbox["username"], "domain": {"name": "Default"},
            "password": sandbox["password"]}}},
            "scope": {"project": {"name": sandbox["project_name"],
                                  "domain": {"name": "Default"}}}}}
        req = urllib.request.Request(sandbox["auth_url"] + "/v3/auth/tokens",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.token = resp.headers["x-subject-token"]
            catalog = json.loads(resp.read())["token"]["catalog"]
        url = {s["type"]: next(e["url"] for e in s["endpoints"] if e["region"] == region)
               for s in catalog}
        self.network, self.compute = url["network"].rstrip("/"), url["compute"].rstrip("/")
        [fip] = [f for f in self.get(f"{self.network}/v2.0/floatingips")["floatingips"]
                 if "cloudtmpl:stack=cbd;" in (f.get("description") or "")]
        self.fip = fip["id"]

    def get(self, url: str) -> Any:
        req = urllib.request.Request(url, headers={"X-Auth-Token": self.token})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def target(self) -> str | None:
        port = self.get(f"{self.network}/v2.0/floatingips/{self.fip}")["floatingip"]["port_id"]
        if not port:
            return None
        found = self.get(f"{self.network}/v2.0/ports/{port}")
        return str(found["port"]["device_id"]) if found else f"(deleted port {port})"

    def state(self, server: str) -> str:
        found = self.get(f"{self.compute}/servers/{server}")
        return str(found["server"]["status"]) if found else "gone"

    running = "ACTIVE"


class Probe(threading.Thread):
    """Asks the cloud where the address points, over and over, while apply runs."""

    def __init__(self, address: AwsAddress | OpenStackAddress) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.seen: list[str] = []  # the server the address pointed at, each time
        self.bad: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.look()
            except Exception as err:  # a probe error is a finding too
                self.bad.append(f"probe failed: {err!r}")
            time.sleep(0.02)

    def look(self) -> None:
        server = self.address.target()
        if server is None:
            self.bad.append("the address is associated with nothing")
            return
        state = self.address.state(server)
        if state != self.address.running and self.address.target() == server:
            # still pointing there after the state was read: it pointed at a server
            # that is not running (reading the state took a moment: look once more)
            self.bad.append(f"the address points at {server}, which is {state}")
            return
        self.seen.append(server)


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_the_address_moves_to_the_replacement_before_the_old_server_goes(
        cloud: str, tmp_path: Path, aws_reset: dict[str, Any],
        openstack_reset: dict[str, Any]) -> None:
    spec = CLOUDS[cloud]
    sandbox = aws_reset if cloud == "aws" else openstack_reset
    write(tmp_path / "cbd.yaml", TEMPLATE.format(**spec))
    r = invoke(tmp_path, "apply", "cbd.yaml", "--yes")
    assert r.code == 0, r.out + r.err
    [(old_id, old_root)] = roots(sandbox).items()
    address = AwsAddress(sandbox, spec["region"]) if cloud == "aws" \
        else OpenStackAddress(sandbox, spec["region"])
    assert address.target() == old_id
    probe = Probe(address)
    probe.start()
    try:
        # a process of its own: in this one the apply's threads would starve the probe
        r = run(tmp_path, "apply", "cbd.yaml", "-p", f"image={spec['other']}", "--yes",
                "--format", "json")
    finally:
        probe.done.set()
        probe.join()
    assert r.code == 0, r.err + r.out
    [(new_id, new_root)] = roots(sandbox).items()
    assert new_id != old_id and address.target() == new_id
    # the JSON event stream: create new -> move the address -> drain -> delete old
    order = [f"{e['event']} {e['action']} {e['address']}" for e in events(r.out)
             if e["event"] != "result"]
    chain = ["done create web", "start update web_ip", "done update web_ip",
             "done hook web", "start delete web", "done delete web"]
    assert [order.index(step) for step in chain] == sorted(
        order.index(step) for step in chain), order
    # on the servers' own clocks: the new one was up, then the old one drained, then
    # deleted; the drain ran on the old server (it found it where it is now)
    assert stamp(new_root, "booted") < stamp(old_root, "drained") < stamp(old_root, "halted")
    assert not (new_root / "drained").exists()
    log = (tmp_path / ".cloudtmpl" / "logs" / "cbd" / "web.pre_replace.log").read_text()
    assert "exit status 0" in log and "drained" in log
    # the probe: every answer a running server, the old one first, then the new one
    assert not probe.bad, probe.bad[:5]
    assert len(probe.seen) > 10, probe.seen  # ~30 (AWS) and ~45 (OpenStack) answers
    assert probe.seen[0] == old_id and probe.seen[-1] == new_id
    assert set(probe.seen) == {old_id, new_id}
    assert probe.seen.index(new_id) > probe.seen.index(old_id)
    assert old_id not in probe.seen[probe.seen.index(new_id):]  # moved once, for good
    assert invoke(tmp_path, "plan", "cbd.yaml", "-p", f"image={spec['other']}",
                  "--detailed-exitcode").code == 0
    assert invoke(tmp_path, "destroy", "cbd.yaml", "-p", f"image={spec['other']}",
                  "--yes").code == 0


def test_the_aws_sandbox_moves_an_elastic_ip_as_ec2_does(
        aws_reset: dict[str, Any], catalog_amis: dict[tuple[str, str], str]) -> None:
    """AllowReassociation=true moves it (the instance it leaves gets a new public IP);
    without it an associated address is refused (Resource.AlreadyAssociated)."""
    from botocore.exceptions import ClientError

    client = ec2(aws_reset, "eu-central-1")
    ami = catalog_amis[("eu-central-1", "ubuntu-22.04")]
    a, b = (client.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1,
                                 MaxCount=1)["Instances"][0]["InstanceId"] for _ in range(2))

    def public_ip(server: str) -> str | None:
        found = client.describe_instances(InstanceIds=[server])["Reservations"]
        return found[0]["Instances"][0].get("PublicIpAddress")

    auto = public_ip(a)
    eip = client.allocate_address(Domain="vpc")
    client.associate_address(AllocationId=eip["AllocationId"], InstanceId=a)
    assert public_ip(a) == eip["PublicIp"] != auto
    with pytest.raises(ClientError) as exc:
        client.associate_address(AllocationId=eip["AllocationId"], InstanceId=b,
                                 AllowReassociation=False)
    assert exc.value.response["Error"]["Code"] == "Resource.AlreadyAssociated"
    client.associate_address(AllocationId=eip["AllocationId"], InstanceId=b,
                             AllowReassociation=True)
    [moved] = client.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert moved["InstanceId"] == b and public_ip(b) == eip["PublicIp"]
    left = public_ip(a)
    assert left and left != eip["PublicIp"]  # a new auto-assigned one, as on EC2
