"""``Cloud::Secret`` (``OS::Barbican::Secret``) end to end through the CLI: Barbican on
the OpenStack emulator, Secrets Manager on the AWS sandbox; and the emulator's Barbican
as strict as Barbican (401, 404, 406, 409, 400).

Each cycle: apply -> outputs (the href in clear, the value sealed) -> a no-op plan ->
a new payload (OpenStack: a replacement, Barbican secrets are immutable; AWS: an
in-place update) -> destroy, with nothing left (listed through the cloud's own API).
The payloads are canaries: none may appear in anything cloudtmpl writes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudtmpl.providers.base import SECRET
from cloudtmpl.sensitive import is_marked
from tests.integration import adapters
from tests.integration.clitools import os_driver, owned, run, write

pytestmark = pytest.mark.integration

OS_TARGET = "sandbox-openstack/de-fra-1"
AWS_TARGET = "sandbox-aws/eu-central-1"
FIRST = "CanarySecretOne9Xq"
SECOND = "CanarySecretTwo4Zk"
LITERAL = "CanaryLiteralPw7Lm"

TEMPLATE = """heat_template_version: 2018-08-31
parameters:
  db_password: {type: string, hidden: true}
resources:
  db:
    type: OS::Barbican::Secret
    properties:
      name: ignored-as-in-every-kind
      payload: {get_param: db_password}
      payload_content_type: text/plain
  api_key:
    type: Cloud::Secret
    properties:
      payload: LITERAL_PAYLOAD
  made:
    type: Cloud::Secret
    properties:
      generate: {type: password, length: 24}
outputs:
  db_href: {value: {get_resource: db}}
  db_href_attr: {value: {get_attr: [db, href]}}
  db_value: {value: {get_attr: [db, decrypted_payload]}}
  api_key_value: {value: {get_attr: [api_key, value]}}
  made_value: {value: {get_attr: [made, value]}}
""".replace("LITERAL_PAYLOAD", LITERAL)


def _project(tmp_path: Path, payload: str) -> tuple[str, ...]:
    write(tmp_path / "cloudtmpl.yaml", "providers: {}\n")
    write(tmp_path / "app.yaml", TEMPLATE)
    write(tmp_path / "secrets.yaml", json.dumps({"parameters": {"db_password": payload}}))
    return ("app.yaml", "-e", "secrets.yaml")


def _written(tmp_path: Path) -> bytes:
    """Every file cloudtmpl wrote in the project (state, plan files, logs, journal).
    A plan file's snapshot of the template files (``sources``) is left out: a payload
    written as a literal is in the template itself, in clear, as the user wrote it."""
    out = b""
    for path in (tmp_path / ".cloudtmpl").rglob("*"):
        if path.is_file() and "keys" not in path.parts:
            out += path.read_bytes()
    for path in tmp_path.glob("*.plan"):
        saved = json.loads(path.read_text())
        assert LITERAL in json.dumps(saved.pop("sources"))  # the template, as written
        out += json.dumps(saved).encode()
    return out


def _no_canary(*texts: str | bytes) -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        for canary in (FIRST, SECOND, LITERAL):
            assert canary.encode() not in data, canary


def _cycle(tmp_path: Path, target: str) -> dict[str, Any]:
    """apply, outputs, no-op plan; returns the outputs (JSON)."""
    base = (*_project(tmp_path, FIRST), "--target", target)
    plan = run(tmp_path, "plan", *base, "--out", "app.plan")
    assert plan.code == 0, plan.err + plan.out
    shown = run(tmp_path, "plan", *base, "--format", "json")
    assert shown.code == 0, shown.err
    applied = run(tmp_path, "apply", "app.plan", "-e", "secrets.yaml")
    assert applied.code == 0, applied.err + applied.out
    out = run(tmp_path, "outputs", "-s", "app", "--format", "json")
    assert out.code == 0, out.err
    outputs = out.json()
    assert outputs["db_href"] == outputs["db_href_attr"]
    for name in ("db_value", "api_key_value", "made_value"):
        assert str(outputs[name]).startswith("(sensitive) hmac:"), outputs
    again = run(tmp_path, "plan", *base, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err  # a no-op
    state = run(tmp_path, "state", "show", "app", "--format", "json")
    _no_canary(plan.out, plan.err, shown.out, applied.out, applied.err, out.out,
               again.out, state.out, _written(tmp_path))
    return dict(outputs)


def _change_payload(tmp_path: Path, target: str, action: str) -> str:
    base = (*_project(tmp_path, SECOND), "--target", target)
    plan = run(tmp_path, "plan", *base, "--format", "json")
    assert plan.code == 0, plan.err
    changes = {c["address"]: c for c in plan.json()["changes"]}
    assert changes["db"]["action"] == action, changes["db"]
    assert {c["action"] for a, c in changes.items() if a != "db"} == {"no-op"}
    applied = run(tmp_path, "apply", *base, "--yes")
    assert applied.code == 0, applied.err + applied.out
    again = run(tmp_path, "plan", *base, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    _no_canary(plan.out, applied.out, applied.err, again.out, _written(tmp_path))
    return str(run(tmp_path, "outputs", "-s", "app", "db_href", "--raw").out.strip())


# ------------------------------------------------------------------ OpenStack: Barbican


def _token(info: dict[str, Any]) -> tuple[str, str]:
    """(token, Barbican's endpoint in de-fra-1) from the emulator's Keystone."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": info["username"], "domain": {"id": "default"}, "password": info["password"]}}},
        "scope": {"project": {"name": info["project_name"], "domain": {"id": "default"}}}}}
    req = urllib.request.Request(f"{info['auth_url']}/v3/auth/tokens",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        token = resp.headers["X-Subject-Token"]
        catalog = json.loads(resp.read())["token"]["catalog"]
    [entry] = [e for e in catalog if e["type"] == "key-manager"]
    [url] = [e["url"] for e in entry["endpoints"]
             if e["region"] == "de-fra-1" and e["interface"] == "public"]
    return token, url


def _barbican(url: str, method: str = "GET", token: str | None = None, body: Any = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else (
        json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={
        **({"X-Auth-Token": token} if token else {}),
        **({"Content-Type": "application/json"} if body is not None
           and not isinstance(body, bytes) else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode()


def _os_secrets(info: dict[str, Any]) -> list[dict[str, Any]]:
    token, url = _token(info)
    status, body = _barbican(f"{url}/v1/secrets?limit=100", token=token)
    assert status == 200, body
    return list(body["secrets"])


def test_secrets_on_openstack_are_barbican_secrets(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    outputs = _cycle(tmp_path, OS_TARGET)
    found = {s["name"]: s for s in _os_secrets(openstack_reset)}
    assert set(found) == {"app.db", "app.api_key", "app.made"}
    assert outputs["db_href"] == found["app.db"]["secret_ref"]
    # the cloud holds the payloads in clear, and hands them out with a matching Accept
    token, _ = _token(openstack_reset)
    status, text = _barbican(f"{outputs['db_href']}/payload", token=token,
                             headers={"Accept": "text/plain"})
    assert (status, text) == (200, FIRST)
    status, text = _barbican(f"{found['app.made']['secret_ref']}/payload", token=token,
                             headers={"Accept": "text/plain"})
    assert status == 200 and len(text) == 24 and text.isalnum()

    new_href = _change_payload(tmp_path, OS_TARGET, "replace")
    assert new_href != outputs["db_href"]  # immutable: a new secret
    status, text = _barbican(f"{new_href}/payload", token=token,
                             headers={"Accept": "text/plain"})
    assert (status, text) == (200, SECOND)
    assert _barbican(outputs["db_href"], token=token)[0] == 404  # the old one is gone
    assert len(_os_secrets(openstack_reset)) == 3

    gone = run(tmp_path, "destroy", *_project(tmp_path, SECOND), "--target", OS_TARGET,
               "--yes")
    assert gone.code == 0, gone.err
    assert _os_secrets(openstack_reset) == []
    _no_canary(gone.out, gone.err, _written(tmp_path))


# ------------------------------------------------------------------ AWS: Secrets Manager


def _sm(info: dict[str, Any]) -> Any:
    return boto3.client("secretsmanager", endpoint_url=info["endpoint"],
                        region_name="eu-central-1", aws_access_key_id=info["access_key"],
                        aws_secret_access_key=info["secret_key"])


def _aws_cli(info: dict[str, Any], *args: str) -> Any:
    cli = Path(sys.executable).with_name("aws")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": info["access_key"],
                "AWS_SECRET_ACCESS_KEY": info["secret_key"],
                "AWS_DEFAULT_REGION": "eu-central-1", "AWS_EC2_METADATA_DISABLED": "true"})
    proc = subprocess.run([str(cli), "--endpoint-url", info["endpoint"], "--output", "json",
                           *args], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_secrets_on_aws_are_secrets_manager_secrets(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    outputs = _cycle(tmp_path, AWS_TARGET)
    sm = _sm(aws_reset)
    found = {s["Name"]: s for s in sm.list_secrets()["SecretList"]}
    assert set(found) == {"app.db", "app.api_key", "app.made"}
    assert outputs["db_href"] == found["app.db"]["ARN"]
    assert sm.get_secret_value(SecretId="app.db")["SecretString"] == FIRST
    made = sm.get_secret_value(SecretId="app.made")["SecretString"]
    assert len(made) == 24 and made != FIRST  # GetRandomPassword's

    same_href = _change_payload(tmp_path, AWS_TARGET, "update")
    assert same_href == outputs["db_href"]  # in place: PutSecretValue
    assert sm.get_secret_value(SecretId="app.db")["SecretString"] == SECOND

    gone = run(tmp_path, "destroy", *_project(tmp_path, SECOND), "--target", AWS_TARGET,
               "--yes")
    assert gone.code == 0, gone.err
    # nothing left, not even scheduled for deletion (it would block the name): as the
    # real AWS CLI lists them
    assert _aws_cli(aws_reset, "secretsmanager", "list-secrets",
                    "--include-planned-deletion") == {"SecretList": []}
    _no_canary(gone.out, gone.err, _written(tmp_path))
    # the same names again at once: nothing blocks them
    again = run(tmp_path, "apply", *_project(tmp_path, FIRST), "--target", AWS_TARGET, "--yes")
    assert again.code == 0, again.err + again.out
    assert len(sm.list_secrets()["SecretList"]) == 3


SERVER_TOO = TEMPLATE.replace("outputs:\n", """  web:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: tiny
      metadata:
        secret_href: {get_attr: [db, href]}
        secret_value: {get_attr: [db, value]}
outputs:
""")


def test_an_unchanged_secret_gives_its_real_value_to_a_new_server(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    """The plan holds the secret's value sealed; apply reads it again from Barbican for
    the server added beside the unchanged secret (the cloud gets it in clear)."""
    base = (*_project(tmp_path, FIRST), "--target", OS_TARGET)
    assert run(tmp_path, "apply", *base, "--yes").code == 0
    write(tmp_path / "app.yaml", SERVER_TOO)
    plan = run(tmp_path, "plan", *base, "--format", "json")
    changes = {c["address"]: c["action"] for c in plan.json()["changes"]}
    assert changes == {"db": "no-op", "api_key": "no-op", "made": "no-op", "web": "create"}
    applied = run(tmp_path, "apply", *base, "--yes")
    assert applied.code == 0, applied.err + applied.out
    [web] = owned(os_driver(openstack_reset, "de-fra-1").list_nodes(), "app")
    href = next(s["secret_ref"] for s in _os_secrets(openstack_reset) if s["name"] == "app.db")
    meta = web.extra["metadata"]
    assert (meta["secret_href"], meta["secret_value"]) == (href, FIRST)
    _no_canary(plan.out, applied.out, applied.err, _written(tmp_path))
    assert run(tmp_path, "destroy", *base, "--yes").code == 0
    assert _os_secrets(openstack_reset) == []


def test_the_emulators_barbican_refuses_what_barbican_refuses(
        openstack_reset: dict[str, Any]) -> None:
    token, url = _token(openstack_reset)
    secrets = f"{url}/v1/secrets"
    # no token: 401; the version document needs none
    assert _barbican(secrets)[0] == 401
    assert _barbican(f"{url}/")[0] == 300
    # what the create refuses (400), and nothing made
    refused = [
        {"payload": "x"},  # no content type
        {"payload": "", "payload_content_type": "text/plain"},
        {"payload": "eA==", "payload_content_type": "application/octet-stream"},
        {"payload": "x", "payload_content_type": "text/plain",
         "payload_content_encoding": "base64"},
        {"payload": "not base64!", "payload_content_type": "application/octet-stream",
         "payload_content_encoding": "base64"},
        {"payload": "x", "payload_content_type": "text/html"},
        {"payload": "x", "payload_content_type": "text/plain", "secret_type": "password"},
        {"payload": "x", "payload_content_type": "text/plain",
         "expiration": "2001-01-01T00:00:00Z"},
        {"payload": "x", "payload_content_type": "text/plain", "expiration": "someday"},
        {"payload_content_type": "text/plain"},  # a content type with no payload
        {"bit_length": 0},
    ]
    for body in refused:
        status, answer = _barbican(secrets, "POST", token, body)
        assert status == 400, (body, status, answer)
        assert answer["code"] == 400 and answer["title"] == "Bad Request", answer
    assert _barbican(secrets, "POST", token, {"payload": "x" * 10001,
                                              "payload_content_type": "text/plain"})[0] == 413
    assert _barbican(secrets, token=token)[1]["total"] == 0

    # metadata first, the payload once (PUT), then immutable (409)
    status, made = _barbican(secrets, "POST", token, {"name": "later"})
    assert status == 201
    ref = made["secret_ref"]
    assert "content_types" not in _barbican(ref, token=token)[1]
    assert _barbican(f"{ref}/payload", token=token)[0] == 404  # no payload yet
    assert _barbican(ref, "PUT", token, b"first", {"Content-Type": "text/plain"})[0] == 204
    assert _barbican(ref, "PUT", token, b"again", {"Content-Type": "text/plain"})[0] == 409
    assert _barbican(ref, token=token)[1]["content_types"] == {"default": "text/plain"}
    # the payload only with a matching Accept
    assert _barbican(f"{ref}/payload", token=token,
                     headers={"Accept": "text/plain"}) == (200, "first")
    assert _barbican(f"{ref}/payload", token=token,
                     headers={"Accept": "application/octet-stream"})[0] == 406
    # metadata keys are lowercase
    assert _barbican(f"{ref}/metadata", "PUT", token, {"metadata": {"Owner": "x"}})[0] == 400
    assert _barbican(f"{ref}/metadata", "PUT", token, {"metadata": {"owner": "x"}})[0] == 201
    assert _barbican(f"{ref}/metadata", token=token)[1] == {"metadata": {"owner": "x"}}

    # a name filter and offset paging with next/previous
    for i in range(5):
        assert _barbican(secrets, "POST", token, {"name": "many", "payload": f"p{i}",
                                                  "payload_content_type": "text/plain"})[0] == 201
    page = _barbican(f"{secrets}?name=many&limit=2", token=token)[1]
    assert (len(page["secrets"]), page["total"]) == (2, 5) and "previous" not in page
    seen = [s["secret_ref"] for s in page["secrets"]]
    while "next" in page:
        page = _barbican(page["next"], token=token)[1]
        seen += [s["secret_ref"] for s in page["secrets"]]
    assert len(set(seen)) == 5 and ref not in seen

    # a key order: PENDING, then ACTIVE with its secret (binary, 256 bits)
    orders = f"{url}/v1/orders"
    assert _barbican(orders, "POST", token, {"type": "key", "meta": {
        "algorithm": "aes", "bit_length": 100}})[0] == 400
    assert _barbican(orders, "POST", token, {"type": "bogus", "meta": {}})[0] == 400
    status, order = _barbican(orders, "POST", token, {"type": "key", "meta": {
        "name": "k", "algorithm": "aes", "bit_length": 256, "mode": "cbc"}})
    assert status == 202
    for _ in range(100):
        now = _barbican(order["order_ref"], token=token)[1]
        if now["status"] == "ACTIVE":
            break
        time.sleep(0.02)
    assert now["status"] == "ACTIVE"
    key = _barbican(now["secret_ref"], token=token)[1]
    assert (key["secret_type"], key["bit_length"], key["content_types"]) == (
        "symmetric", 256, {"default": "application/octet-stream"})
    assert _barbican(order["order_ref"], "DELETE", token)[0] == 204
    assert _barbican(now["secret_ref"], token=token)[0] == 200  # the secret stays

    # delete: 204, then 404 (and for the payload too)
    assert _barbican(ref, "DELETE", token)[0] == 204
    status, answer = _barbican(ref, "DELETE", token)
    assert status == 404 and answer["code"] == 404
    assert _barbican(f"{ref}/payload", token=token,
                     headers={"Accept": "text/plain"})[0] == 404


def test_the_aws_sandbox_refuses_a_name_scheduled_for_deletion(
        aws_reset: dict[str, Any]) -> None:
    """As AWS: a secret in its recovery window keeps its name (InvalidRequestException
    for a create of it, and for a new value); forced deletion frees it at once."""
    sm = _sm(aws_reset)
    sm.create_secret(Name="held", SecretString="one")
    sm.delete_secret(SecretId="held", RecoveryWindowInDays=7)
    for call in (lambda: sm.create_secret(Name="held", SecretString="two"),
                 lambda: sm.put_secret_value(SecretId="held", SecretString="two")):
        with pytest.raises(sm.exceptions.InvalidRequestException,
                           match=r"(scheduled|marked) for deletion"):
            call()
    assert sm.list_secrets()["SecretList"] == []
    [held] = sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    assert "DeletedDate" in held
    sm.restore_secret(SecretId="held")
    assert sm.get_secret_value(SecretId="held")["SecretString"] == "one"
    sm.delete_secret(SecretId="held", ForceDeleteWithoutRecovery=True)
    sm.create_secret(Name="held", SecretString="three")  # free again
    with pytest.raises(sm.exceptions.ResourceExistsException):
        sm.create_secret(Name="held", SecretString="four")


def test_generated_keys_on_both_clouds(openstack_reset: dict[str, Any],
                                       aws_reset: dict[str, Any]) -> None:
    """``generate: {type: symmetric}``: a Barbican key order (deleted once its secret
    exists), a random SecretBinary on AWS; both symmetric, the key never in a property."""
    props = {"generate": {"type": "symmetric", "bit_length": 128}, "secret_type": "symmetric"}
    stack = adapters.openstack(openstack_reset)
    key = adapters.create(stack, adapters.OPENSTACK_REGION, SECRET, "key", props)
    assert key.properties == {"secret_type": "symmetric", "algorithm": "aes",
                              "bit_length": 128, "mode": "cbc",
                              "payload_content_type": "application/octet-stream"}
    assert "value" not in key.attributes  # a binary payload is not read back
    token, url = _token(openstack_reset)
    assert _barbican(f"{url}/v1/orders", token=token)[1]["orders"] == []
    status, meta = _barbican(f"{key.physical_id}/metadata", token=token)
    assert meta["metadata"]["cloudtmpl:resource"] == "key" and status == 200
    stack.delete(key, timeout=60.0)
    assert _os_secrets(openstack_reset) == []

    aws = adapters.aws(aws_reset)
    made = adapters.create(aws, adapters.AWS_REGION, SECRET, "key", props)
    assert made.properties["secret_type"] == "symmetric"
    value = made.attributes["value"]
    assert is_marked(value) and len(base64.b64decode(value)) == 16
    aws.delete(made, timeout=60.0)
    assert aws.discover(adapters.AWS_REGION, frozenset({SECRET}), adapters.STACK) == []
