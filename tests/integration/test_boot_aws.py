"""AWS sandbox instances boot as cloud-init would, proved with the real AWS CLI (v1).

``aws ec2 run-instances --user-data file://...`` (the CLI base64-encodes it, as EC2
wants); what the user data did is read from the instance's server root (through the
sandbox's ``GET /_sandbox/boots``) and from ``aws ec2 get-console-output`` (EC2's
``GetConsoleOutput``: base64 ``Output``, which the CLI decodes).  A script and a
cloud-config, a reboot (per-boot parts only), stop/start, and a long script killed by
terminate (its pids gone).
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudtmpl_sandbox import control
from tests.integration.test_real_clients_aws import REGION, Aws

pytestmark = pytest.mark.integration


@pytest.fixture
def aws(aws_reset: dict[str, Any], tmp_path: Path) -> Aws:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config").write_text("")
    (home / "credentials").write_text("")
    return Aws(aws_reset, home)


def boots(aws: Aws) -> dict[str, Any]:
    status, body = control.call(aws.info["endpoint"], aws.info["token"], "GET",
                                "/_sandbox/boots")
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def launch(aws: Aws, ami: str, data: bytes) -> str:
    path = aws.home / "userdata"
    path.write_bytes(data)
    (instance,) = aws("ec2", "run-instances", "--image-id", ami, "--instance-type",
                      "t3.micro", "--count", "1", "--user-data", f"file://{path}")["Instances"]
    instance_id: str = instance["InstanceId"]
    return instance_id


def console(aws: Aws, instance_id: str) -> str:
    answer = aws("ec2", "get-console-output", "--instance-id", instance_id)
    assert answer["InstanceId"] == instance_id, answer
    output: str = answer.get("Output", "")
    return output


def wait_console(aws: Aws, instance_id: str, text: str, count: int = 1) -> str:
    deadline = time.monotonic() + 20
    while True:
        log = console(aws, instance_id)
        if log.count(text) >= count:
            return log
        assert time.monotonic() < deadline, f"{text!r} not {count}x in:\n{log}"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_user_data_script_and_console_output(aws: Aws,
                                             catalog_amis: dict[tuple[str, str], str]) -> None:
    ami = catalog_amis[(REGION, "ubuntu-22.04")]
    iid = launch(aws, ami, b"#!/bin/bash\necho \"hello from $SERVER_ID\"\n"
                           b"echo made > \"$SERVER_ROOT/made.txt\"\n")
    log = wait_console(aws, iid, "finished at")
    assert f"hello from {iid}" in log and "DataSourceEc2Local" in log, log
    assert (Path(boots(aws)[iid]["root"]) / "made.txt").read_text() == "made\n"
    error = aws.refused("ec2", "get-console-output", "--instance-id", "i-0123456789abcdef0")
    assert "InvalidInstanceID.NotFound" in error, error


def test_cloud_config_reboot_stop_start(aws: Aws,
                                        catalog_amis: dict[tuple[str, str], str]) -> None:
    ami = catalog_amis[(REGION, "ubuntu-22.04")]
    config = {"bootcmd": ["echo boot >> \"$HOME/boots.txt\""],
              "write_files": [{"path": "/etc/motd", "content": "welcome\n"}],
              "runcmd": ["echo once >> \"$HOME/once.txt\""]}
    iid = launch(aws, ami, ("#cloud-config\n" + yaml.safe_dump(config)).encode())
    wait_console(aws, iid, "finished at")
    root = Path(boots(aws)[iid]["root"])
    assert (root / "etc/motd").read_text() == "welcome\n"
    assert (root / "once.txt").read_text() == "once\n"
    aws("ec2", "reboot-instances", "--instance-ids", iid)
    wait_console(aws, iid, "finished at", 2)
    aws("ec2", "stop-instances", "--instance-ids", iid)
    assert "server stopped" in console(aws, iid)
    aws("ec2", "start-instances", "--instance-ids", iid)
    wait_console(aws, iid, "finished at", 3)
    assert (root / "boots.txt").read_text() == "boot\n" * 3
    assert (root / "once.txt").read_text() == "once\n"  # once per instance


def test_a_long_script_is_killed_on_terminate(aws: Aws,
                                              catalog_amis: dict[tuple[str, str], str]) -> None:
    ami = catalog_amis[(REGION, "ubuntu-22.04")]
    iid = launch(aws, ami, b"#!/bin/sh\nsleep 300 &\necho started\nwait\n")
    wait_console(aws, iid, "started")
    (leader,) = boots(aws)[iid]["pids"]
    assert _alive(leader)
    aws("ec2", "terminate-instances", "--instance-ids", iid)
    assert not _alive(leader)
    mark = f"SERVER_ID={iid}".encode()
    left = []
    for entry in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in entry.read_bytes().split(b"\0") and _alive(int(entry.parent.name)):
                left.append(entry.parent.name)
        except OSError:
            continue
    assert left == []


def test_console_output_is_base64_on_the_wire(aws: Aws,
                                              catalog_amis: dict[tuple[str, str], str]) -> None:
    """EC2's query API answers ``output`` base64-encoded (checked without the CLI)."""
    import boto3
    from botocore.config import Config

    ami = catalog_amis[(REGION, "ubuntu-22.04")]
    iid = launch(aws, ami, b"#!/bin/sh\necho wire-check\n")
    wait_console(aws, iid, "wire-check")
    client = boto3.client("ec2", region_name=REGION, endpoint_url=aws.info["endpoint"],
                          aws_access_key_id=aws.info["access_key"],
                          aws_secret_access_key=aws.info["secret_key"],
                          config=Config(retries={"max_attempts": 1}))
    raw: list[bytes] = []
    client.meta.events.register_first("after-call.ec2.GetConsoleOutput",
                                      lambda http_response, **_: raw.append(
                                          http_response.content))
    client.get_console_output(InstanceId=iid)
    body = raw[0].decode()
    encoded = body.split("<output>", 1)[1].split("</output>", 1)[0]
    assert "wire-check" in base64.b64decode(encoded).decode(), body


def test_boot_processes_end_with_the_sandbox(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Sandboxes of their own: stopping them kills what their servers still run."""
    import boto3

    from cloudtmpl_sandbox import manager

    own = tmp_path / "own-sandbox"
    monkeypatch.setenv("CLOUDTMPL_SANDBOX_DIR", str(own))
    info = manager.start(own)
    try:
        aws_info = info["aws"]
        client = boto3.client("ec2", region_name=REGION, endpoint_url=aws_info["endpoint"],
                              aws_access_key_id=aws_info["access_key"],
                              aws_secret_access_key=aws_info["secret_key"])
        image = client.describe_images()["Images"][0]["ImageId"]
        iid = client.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                   InstanceType="t3.micro",
                                   UserData="#!/bin/sh\nsleep 300\n")["Instances"][0][
                                       "InstanceId"]
        deadline = time.monotonic() + 20
        while True:
            status, body = control.call(aws_info["endpoint"], aws_info["token"], "GET",
                                        "/_sandbox/boots")
            assert status == 200, body
            if body.get(iid, {}).get("pids"):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        (leader,) = body[iid]["pids"]
        assert _alive(leader)
    finally:
        manager.stop(own)
    assert not _alive(leader)


def test_a_script_reaches_the_sandbox_over_loopback(
        aws: Aws, catalog_amis: dict[tuple[str, str], str]) -> None:
    """User data can fetch an S3 presigned URL of the sandbox (what a wait condition's
    signal does), as a real instance reaches its cloud's endpoints."""
    aws("s3api", "create-bucket", "--bucket", "boot-fetch", "--create-bucket-configuration",
        f"LocationConstraint={REGION}")
    body = aws.home / "payload.txt"
    body.write_text("fetched over loopback\n")
    aws("s3api", "put-object", "--bucket", "boot-fetch", "--key", "payload.txt", "--body",
        str(body))
    proc = aws._run(("s3", "presign", "s3://boot-fetch/payload.txt"), REGION)
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.strip()
    assert url.startswith(aws.info["endpoint"]), url
    ami = catalog_amis[(REGION, "ubuntu-22.04")]
    iid = launch(aws, ami, (f"#!/bin/sh\ncurl -fsS '{url}' -o \"$HOME/got.txt\"\n"
                            "echo curl exit $?\n").encode())
    log = wait_console(aws, iid, "curl exit")
    assert "curl exit 0" in log, log
    root = Path(boots(aws)[iid]["root"])
    assert (root / "got.txt").read_text() == "fetched over loopback\n"
