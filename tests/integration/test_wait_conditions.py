"""Wait conditions end to end through the CLI on both sandboxes: a handle's signal URL
(a Swift temp URL; a presigned S3 PUT), signals sent with the handle's own ``curl_cli``
from this process (as a server's user data sends them), the condition's apply waiting
for them; FAILURE, timeout, sealing, destroy; and the emulators' refusals."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration import adapters
from tests.integration.clitools import cli_args, cli_env, run, write

pytestmark = pytest.mark.integration

HANDLE = "Cloud::Orchestration::WaitConditionHandle"
OS_REGION = "nl-ams-1"

OS_TEMPLATE = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-openstack, region: nl-ams-1}
resources:
  wait_handle:
    type: OS::Heat::WaitConditionHandle
  wait_condition:
    type: OS::Heat::WaitCondition
    properties:
      handle: {get_resource: wait_handle}
      count: COUNT
      timeout: TIMEOUT
  boot_script:
    type: OS::Heat::Value
    properties:
      value:
        str_replace:
          template: |
            #!/bin/sh
            wc_notify --data-binary '{"status": "SUCCESS"}'
          params:
            wc_notify: {get_attr: [wait_handle, curl_cli]}
  after:
    type: OS::Heat::Value
    depends_on: wait_condition
    properties: {value: ok}
outputs:
  data: {value: {get_attr: [wait_condition, data]}}
  curl: {value: {get_attr: [wait_handle, curl_cli]}}
"""


def _template(count: int = 1, timeout: int = 60) -> str:
    return OS_TEMPLATE.replace("COUNT", str(count)).replace("TIMEOUT", str(timeout))


def _start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(cli_args(*args), cwd=cwd, env=cli_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out + err


def _handle_live(adapter: Any, region: str, stack: str, deadline: float = 30.0) -> Any:
    """The stack's handle as the product discovers it (waiting for apply to make it)."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        found = [r for r in adapter.discover(region, frozenset({HANDLE}), stack)
                 if r.attributes.get("curl_cli")]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("the handle was never made")


def _signal(curl_cli: str, body: dict[str, Any] | str) -> str:
    """Run the handle's curl line with a signal, as a boot script does: the status line."""
    data = body if isinstance(body, str) else json.dumps(body)
    line = f"{curl_cli} --data-binary {shlex.quote(data)}"
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=30,
                          check=True)
    return done.stdout.splitlines()[0] if done.stdout else done.stderr


def _http(url: str, method: str = "PUT", data: bytes = b"{}") -> int:
    req = urllib.request.Request(url, data=data if method == "PUT" else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _containers(info: dict[str, Any], stack: str) -> list[str]:
    adapter = adapters.openstack(info)
    with adapter.client.session(OS_REGION):
        return adapter.client.swift.containers(OS_REGION, f"{stack}.")


# ---------------------------------------------------------------------- OpenStack


def test_openstack_count_one_then_noop_replan_and_destroy(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "st.yaml", _template())
    proc = _start(tmp_path, "apply", "st.yaml", "--yes")
    handle = _handle_live(adapters.openstack(openstack_reset), OS_REGION, "st")
    curl = handle.attributes["curl_cli"]
    assert curl.startswith("curl -i -X PUT 'http://127.0.0.1:") and "temp_url_sig=" in curl
    assert json.loads(handle.attributes["signal"]) == {"alarm_url": handle.attributes["endpoint"]}
    assert _signal(curl, {"status": "SUCCESS", "reason": "booted", "data": "web0 up",
                          "id": "web0"}).startswith("HTTP/1.1 201")
    code, out = _finish(proc)
    assert code == 0, out
    assert "done create wait_condition" in out and "done create after" in out
    assert 'data = {"web0": "web0 up"}' in out
    assert "temp_url_sig" not in out  # the URL is sealed in the outputs
    assert re.search(r"curl = \(sensitive\) hmac:", out)

    # satisfied: a new plan waits for nothing, and changes nothing
    started = time.monotonic()
    r = run(tmp_path, "plan", "st.yaml", "--detailed-exitcode")
    assert r.code == 0, r.out + r.err
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 0 and "start create" not in r.out, r.out + r.err
    assert time.monotonic() - started < 30
    assert 'data = {"web0": "web0 up"}' in r.out

    assert sorted(_containers(openstack_reset, "st")) == ["st.wait_condition", "st.wait_handle"]
    r = run(tmp_path, "destroy", "st.yaml", "--yes")
    assert r.code == 0, r.out + r.err
    assert _containers(openstack_reset, "st") == []


def test_openstack_count_two_with_a_repeated_id(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "st.yaml", _template(count=2))
    proc = _start(tmp_path, "apply", "st.yaml", "--yes")
    curl = _handle_live(adapters.openstack(openstack_reset), OS_REGION,
                        "st").attributes["curl_cli"]
    _signal(curl, {"id": "a", "data": "first"})
    _signal(curl, {"id": "a", "data": "again"})  # the same id: still one signal
    time.sleep(1.5)
    assert proc.poll() is None, "two signals with one id satisfied count 2"
    _signal(curl, {"data": "no id"})  # no id: its number (3), no status: SUCCESS
    code, out = _finish(proc)
    assert code == 0, out
    assert 'data = {"3": "no id", "a": "again"}' in out
    assert run(tmp_path, "destroy", "st.yaml", "--yes").code == 0
    assert _containers(openstack_reset, "st") == []


def test_openstack_failure_signal_fails_the_apply(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "st.yaml", _template())
    proc = _start(tmp_path, "apply", "st.yaml", "--yes")
    curl = _handle_live(adapters.openstack(openstack_reset), OS_REGION,
                        "st").attributes["curl_cli"]
    _signal(curl, {"status": "FAILURE", "reason": "the database did not start"})
    code, out = _finish(proc)
    assert code == 1, out
    assert "failed create wait_condition" in out
    assert "a FAILURE signal arrived: the database did not start" in out
    assert "skipped create after: wait_condition failed" in out
    assert run(tmp_path, "destroy", "st.yaml", "--yes").code == 0
    assert _containers(openstack_reset, "st") == []


def test_openstack_timeout_names_the_handle_and_skips_dependents(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "st.yaml", _template(timeout=2))
    started = time.monotonic()
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 1, r.out + r.err
    assert time.monotonic() - started < 60
    assert ("timed out after 2 s waiting for wait_handle (container st.wait_handle): "
            "0 of 1 signals received") in r.out
    assert "skipped create after: wait_condition failed" in r.out
    # the failed condition left nothing; the handle is there until destroy
    assert _containers(openstack_reset, "st") == ["st.wait_handle"]
    r = run(tmp_path, "destroy", "st.yaml", "--yes")
    assert r.code == 0, r.out + r.err
    assert _containers(openstack_reset, "st") == []


def test_openstack_signal_url_is_sealed_everywhere(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "st.yaml", _template(timeout=2))
    assert run(tmp_path, "apply", "st.yaml", "--yes").code == 1  # the handle is made
    handle = _handle_live(adapters.openstack(openstack_reset), OS_REGION, "st")
    sig = re.search(r"temp_url_sig=([0-9a-f]+)", handle.attributes["endpoint"])
    assert sig is not None
    outputs = [run(tmp_path, "plan", "st.yaml", "--out", "st.plan"),
               run(tmp_path, "plan", "st.yaml", "--json"),
               run(tmp_path, "outputs", "st.yaml"),
               run(tmp_path, "state", "show", "st.yaml"),
               run(tmp_path, "destroy", "st.yaml", "--yes")]
    for r in outputs:
        assert sig.group(1) not in r.out + r.err
    leaked = [p for p in tmp_path.rglob("*") if p.is_file()
              and sig.group(1).encode() in p.read_bytes()]
    assert leaked == []
    assert (tmp_path / "st.plan").is_file()


def test_openstack_plan_file_apply_renders_the_url_into_dependents(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    """A dependent created by a later apply of a plan file gets the real URL (the plan
    holds it sealed: apply reads the handle from the cloud again)."""
    write(tmp_path / "st.yaml", _template(timeout=2))
    assert run(tmp_path, "apply", "st.yaml", "--yes").code == 1
    handle = _handle_live(adapters.openstack(openstack_reset), OS_REGION, "st")
    write(tmp_path / "st.yaml", _template(timeout=30))
    assert run(tmp_path, "plan", "st.yaml", "--out", "st.plan").code in (0, 2)
    proc = _start(tmp_path, "apply", "st.plan", "--yes")
    time.sleep(1)
    _signal(handle.attributes["curl_cli"], {"status": "SUCCESS"})
    code, out = _finish(proc)
    assert code == 0, out
    assert 'data = {"1": null}' in out
    assert run(tmp_path, "destroy", "st.yaml", "--yes").code == 0


def test_swift_tempurl_is_strict(openstack_reset: dict[str, Any]) -> None:
    adapter = adapters.openstack(openstack_reset)
    live = adapter.create(OS_REGION, HANDLE, stack="web", address="h", name="web.h",
                          properties={}, spec_hash="s", timeout=60.0)
    url = live.attributes["endpoint"]
    assert _http(url) == 201  # a signal
    sig = re.search(r"temp_url_sig=([0-9a-f]{64})", url)
    assert sig is not None
    tampered = url.replace(sig.group(1), ("0" if sig.group(1)[0] != "0" else "1")
                           + sig.group(1)[1:])
    assert _http(tampered) == 401
    assert _http(re.sub(r"&temp_url_expires=\d+", "", url)) == 401  # no expiry
    assert _http(re.sub(r"temp_url_expires=\d+", "temp_url_expires=1700000000", url)) == 401
    assert _http(re.sub(r"temp_url_sig=[0-9a-f]+&", "", url)) == 401  # no signature
    assert _http(url, "GET") == 401  # signed for PUT only
    assert _http(url, "DELETE") == 401
    assert _http(url.replace("/signal?", "/other?")) == 401  # another object
    assert _http(url.replace("/web.h/signal?", "/web.other/signal?")) == 401
    assert _http(url.split("?")[0]) == 401  # no token, no signature
    # an account key signs too (Swift reads both), and SHA-1 is read
    from cloudtmpl_sandbox.openstack import tempurl
    with adapter.client.session(OS_REGION):
        adapter.client.swift.request(OS_REGION, "", method="POST",
                                     headers={"X-Account-Meta-Temp-URL-Key": "acct-key"})
    expires = int(time.time()) + 60
    path = "/v1/" + url.split("/v1/", 1)[1].split("?")[0]
    for digest in ("sha1", "sha256"):
        good = tempurl.sign("acct-key", "PUT", expires, path, digest)
        assert _http(f"{url.split('?')[0]}?temp_url_sig={good}&temp_url_expires={expires}") \
            == 201
    # every PUT was kept as a version: the handle holds 3 signals
    with adapter.client.session(OS_REGION):
        _, _, listing = adapter.client.swift.request(
            OS_REGION, "/web.h", params={"versions": "", "format": "json"})
    assert [v["name"] for v in listing] == ["signal"] * 3
    # a condition's container that a crash left without its record: not reported, and
    # deleted with its handle
    with adapter.client.session(OS_REGION):
        adapter.client.swift.request(OS_REGION, "/web.c", method="PUT", headers={
            "X-Container-Meta-Cloudtmpl-Stack": "web",
            "X-Container-Meta-Cloudtmpl-Resource": "c",
            "X-Container-Meta-Cloudtmpl-Kind": "wait-condition",
            "X-Container-Meta-Cloudtmpl-Handle": "web.h"})
    assert adapter.discover(OS_REGION, frozenset({"Cloud::Orchestration::WaitCondition"}),
                            "web") == []
    adapter.delete(live, timeout=60.0)
    assert _containers(openstack_reset, "web") == []


# ---------------------------------------------------------------------- AWS

AWS_REGION = "us-east-1"
AWS_TEMPLATE = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-aws, region: us-east-1}
resources:
  WaitHandle:
    type: AWS::CloudFormation::WaitConditionHandle
  WaitCondition:
    type: AWS::CloudFormation::WaitCondition
    properties:
      Handle: {get_resource: WaitHandle}
      Count: COUNT
      Timeout: TIMEOUT
  After:
    type: OS::Heat::Value
    depends_on: WaitCondition
    properties: {value: ok}
outputs:
  Data: {value: {get_attr: [WaitCondition, Data]}}
  Url: {value: {get_resource: WaitHandle}}
"""


def _aws_template(count: int = 1, timeout: int = 60) -> str:
    return AWS_TEMPLATE.replace("COUNT", str(count)).replace("TIMEOUT", str(timeout))


def _buckets(info: dict[str, Any]) -> list[str]:
    import boto3
    s3 = boto3.client("s3", endpoint_url=info["endpoint"], region_name=AWS_REGION,
                      aws_access_key_id=info["access_key"],
                      aws_secret_access_key=info["secret_key"])
    return sorted(b["Name"] for b in s3.list_buckets().get("Buckets", []))


def _cfn_signal(url: str, body: dict[str, Any]) -> str:
    """CloudFormation's own signal line (its documentation's curl)."""
    line = (f"curl -i -X PUT -H 'Content-Type:' --data-binary {shlex.quote(json.dumps(body))} "
            f"{shlex.quote(url)}")
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=30,
                          check=True)
    return done.stdout.splitlines()[0] if done.stdout else done.stderr


def test_aws_count_two_cfn_signals_noop_replan_and_destroy(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    write(tmp_path / "st.yaml", _aws_template(count=2))
    proc = _start(tmp_path, "apply", "st.yaml", "--yes")
    handle = _handle_live(adapters.aws(aws_reset), AWS_REGION, "st")
    url = handle.attributes["endpoint"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=604800" in url
    assert _cfn_signal(url, {"Status": "SUCCESS", "Reason": "one", "UniqueId": "i-1",
                             "Data": "first"}).startswith("HTTP/1.1 200")
    _cfn_signal(url, {"Status": "SUCCESS", "Reason": "again", "UniqueId": "i-1",
                      "Data": "second"})  # the same UniqueId counts once
    time.sleep(1.5)
    if proc.poll() is not None:
        raise AssertionError("apply ended early: " + _finish(proc)[1])
    # the handle's own curl line works too (Heat's form of a signal)
    assert _signal(handle.attributes["curl_cli"], {"id": "i-2", "data": "third"}) \
        .startswith("HTTP/1.1 200")
    code, out = _finish(proc)
    assert code == 0, out
    assert 'Data = {"i-1": "second", "i-2": "third"}' in out
    assert "X-Amz-Signature" not in out
    assert re.search(r"Url\s+= \(sensitive\) hmac:", out)

    r = run(tmp_path, "plan", "st.yaml", "--detailed-exitcode")
    assert r.code == 0, r.out + r.err
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 0 and "start create" not in r.out, r.out + r.err
    assert 'Data = {"i-1": "second", "i-2": "third"}' in r.out
    leaked = [p for p in tmp_path.rglob("*") if p.is_file()
              and url.split("X-Amz-Signature=")[1].encode() in p.read_bytes()]
    assert leaked == []

    assert _buckets(aws_reset) == ["st-waithandle"]
    r = run(tmp_path, "destroy", "st.yaml", "--yes")
    assert r.code == 0, r.out + r.err
    assert _buckets(aws_reset) == []


def test_aws_failure_and_timeout(tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    write(tmp_path / "st.yaml", _aws_template())
    proc = _start(tmp_path, "apply", "st.yaml", "--yes")
    url = _handle_live(adapters.aws(aws_reset), AWS_REGION, "st").attributes["endpoint"]
    _cfn_signal(url, {"Status": "FAILURE", "Reason": "cfn-init failed", "UniqueId": "i-1",
                      "Data": ""})
    code, out = _finish(proc)
    assert code == 1, out
    assert "a FAILURE signal arrived: cfn-init failed" in out
    assert "skipped create After: WaitCondition failed" in out
    assert run(tmp_path, "destroy", "st.yaml", "--yes").code == 0
    assert _buckets(aws_reset) == []

    write(tmp_path / "st.yaml", _aws_template(timeout=2))
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 1, r.out + r.err
    assert ("timed out after 2 s waiting for WaitHandle (bucket st-waithandle): 0 of 1 "
            "signals received") in r.out
    assert "skipped create After: WaitCondition failed" in r.out
    assert run(tmp_path, "destroy", "st.yaml", "--yes").code == 0
    assert _buckets(aws_reset) == []


def test_aws_presigned_url_is_checked(aws_reset: dict[str, Any]) -> None:
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    adapter = adapters.aws(aws_reset)
    live = adapter.create(AWS_REGION, HANDLE, stack="web", address="h", name="web.h",
                          properties={}, spec_hash="s", timeout=60.0)
    url = live.attributes["endpoint"]
    assert _http(url) == 200
    sig = re.search(r"X-Amz-Signature=([0-9a-f]{64})", url)
    assert sig is not None
    bad = url.replace(sig.group(1), ("0" if sig.group(1)[0] != "0" else "1")
                      + sig.group(1)[1:])
    assert _http(bad) == 403  # SignatureDoesNotMatch
    assert _http(url.replace("/signal?", "/other?")) == 403  # signed for one key
    assert _http(url, "GET") == 403  # signed for PUT only

    # an expired presigned URL (signed by botocore itself, an hour ago for a minute)
    creds = Credentials(aws_reset["access_key"], aws_reset["secret_key"])
    target = f"{aws_reset['endpoint']}/{live.physical_id}/signal"

    class Then(S3SigV4QueryAuth):
        def _modify_request_before_signing(self, request: Any) -> None:
            request.context["timestamp"] = time.strftime(
                "%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 3600))
            super()._modify_request_before_signing(request)

    def presign(expires: int) -> str:
        request = AWSRequest(method="PUT", url=target)
        Then(creds, "s3", AWS_REGION, expires=expires).add_auth(request)
        return str(request.url)

    assert _http(presign(60)) == 403
    assert _http(presign(7200)) == 200  # still valid: the check is the expiry itself
    assert _http(presign(700000)) == 400  # more than a week
    adapter.delete(live, timeout=60.0)
    assert adapter.discover(AWS_REGION, frozenset({HANDLE}), "web") == []


def test_aws_keeps_a_form_typed_body_as_s3_does(aws_reset: dict[str, Any]) -> None:
    """curl --data-binary without -H 'Content-Type:' sends the form type: S3 stores the
    bytes as sent all the same."""
    import boto3
    adapter = adapters.aws(aws_reset)
    live = adapter.create(AWS_REGION, HANDLE, stack="web", address="f", name="web.f",
                          properties={}, spec_hash="s", timeout=60.0)
    body = b'{"status": "SUCCESS", "data": "kept"}'
    req = urllib.request.Request(live.attributes["endpoint"], data=body, method="PUT",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    s3 = boto3.client("s3", endpoint_url=aws_reset["endpoint"], region_name=AWS_REGION,
                      aws_access_key_id=aws_reset["access_key"],
                      aws_secret_access_key=aws_reset["secret_key"])
    got = s3.get_object(Bucket=live.physical_id, Key="signal")
    assert got["Body"].read() == body
    # (S3 would keep the type as sent: the sandbox stores binary/octet-stream)
    adapter.delete(live, timeout=60.0)


def test_swift_object_versioning_as_swift_keeps_it(openstack_reset: dict[str, Any]) -> None:
    adapter = adapters.openstack(openstack_reset)
    swift = adapter.client.swift
    with adapter.client.session(OS_REGION):
        swift.request(OS_REGION, "/v", method="PUT", headers={"X-Versions-Enabled": "true"})
        ids = [swift.request(OS_REGION, "/v/o", method="PUT", data=text,
                             headers={"Content-Type": "text/plain"})[1]
               ["x-object-version-id"] for text in ("one", "two")]
        _, _, listing = swift.request(OS_REGION, "/v", params={"versions": "",
                                                               "format": "json"})
        assert [(e["version_id"], e["is_latest"]) for e in listing] == \
            [(ids[1], True), (ids[0], False)]
        assert swift.request(OS_REGION, "/v/o", params={"version-id": ids[0]})[2] == "one"
        assert swift.request(OS_REGION, "/v/o")[2] == "two"
        swift.request(OS_REGION, "/v/o", method="DELETE")  # a delete marker
        assert swift.request(OS_REGION, "/v/o", ok=(404,))[0] == 404
        assert swift.request(OS_REGION, "/v/o", params={"version-id": ids[1]})[2] == "two"
        # the versions keep the container
        assert swift.request(OS_REGION, "/v", method="DELETE", ok=(409,))[0] == 409
        _, _, listing = swift.request(OS_REGION, "/v", params={"versions": "",
                                                               "format": "json"})
        for entry in listing:
            swift.request(OS_REGION, "/v/o", method="DELETE",
                          params={"version-id": entry["version_id"]})
        assert swift.request(OS_REGION, "/v", method="DELETE")[0] == 204
