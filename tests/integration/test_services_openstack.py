"""Buckets (Swift containers) on the OpenStack sandbox, through the CLI and the raw API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.integration.clitools import run, write

TEMPLATE = """\
heat_template_version: 2021-04-16
placement: {provider: sandbox-openstack, region: nl-ams-1}
resources:
  data:
    type: OS::Swift::Container
    properties:
      X-Container-Meta: {owner: team-a}
  logs:
    type: Cloud::Storage::Bucket
    properties: {versioning: true}
outputs:
  data_url: {value: {get_attr: [data, RootURL]}}
  data_site: {value: {get_attr: [data, WebsiteURL]}}
  data_host: {value: {get_attr: [data, DomainName]}}
  data_count: {value: {get_attr: [data, ObjectCount]}}
  data_bytes: {value: {get_attr: [data, BytesUsed]}}
  logs_name: {value: {get_resource: logs}}
"""


def _token(sandbox: dict[str, Any]) -> tuple[str, str]:
    """(token, the nl-ams-1 object-store URL) for looking inside."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": sandbox["username"], "domain": {"name": "Default"},
        "password": sandbox["password"]}}},
        "scope": {"project": {"name": sandbox["project_name"],
                              "domain": {"name": "Default"}}}}}
    req = urllib.request.Request(sandbox["auth_url"] + "/v3/auth/tokens",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        token = resp.headers["x-subject-token"]
        catalog = json.loads(resp.read())["token"]["catalog"]
    (swift,) = [s for s in catalog if s["type"] == "object-store"]
    url = next(e["url"] for e in swift["endpoints"] if e["region"] == "nl-ams-1")
    return token, url


def _call(token: str, url: str, method: str = "GET", data: bytes | None = None
          ) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"X-Auth-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_swift_api(openstack_reset: dict[str, Any]) -> None:
    token, url = _token(openstack_reset)
    assert _call(token, url + "/c1", "PUT")[0] == 201
    assert _call(token, url + "/c1", "PUT")[0] == 202
    assert _call(token, url + "/c1/a/b.txt", "PUT", b"hello")[0] == 201
    status, headers, _ = _call(token, url + "/c1", "HEAD")
    assert status == 204 and headers["x-container-object-count"] == "1"
    status, _, body = _call(token, url + "?format=json")
    assert status == 200 and json.loads(body)[0]["name"] == "c1"
    status, _, body = _call(token, url + "/c1?format=json")
    assert [o["name"] for o in json.loads(body)] == ["a/b.txt"]
    assert _call(token, url + "/c1", "DELETE")[0] == 409  # not empty
    assert _call(token, url + "/c1/a/b.txt", "DELETE")[0] == 204
    assert _call(token, url + "/c1", "DELETE")[0] == 204
    assert _call(token, url + "/c1", "HEAD")[0] == 404
    assert _call("bogus", url + "/c1", "HEAD")[0] == 401


def test_bucket_lifecycle_on_swift(tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    template = write(tmp_path / "st.yaml", TEMPLATE)
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    outputs = run(tmp_path, "outputs", "-s", "st", "--format", "json").json()
    assert outputs["logs_name"] == "st.logs"
    assert outputs["data_url"].endswith("/object-store/nl-ams-1/v1/AUTH_"
                                        + outputs["data_url"].split("AUTH_")[1])
    token, url = _token(openstack_reset)
    # Heat's attributes of OS::Swift::Container: RootURL the account URL, WebsiteURL the
    # container's, DomainName its host, ObjectCount and BytesUsed from its HEAD
    assert outputs["data_url"] == url
    assert outputs["data_site"] == url + "/st.data"
    assert outputs["data_host"] == urlsplit(url).hostname
    assert (outputs["data_count"], outputs["data_bytes"]) == (0, 0)
    status, headers, _ = _call(token, url + "/st.data", "HEAD")
    assert status == 204
    assert headers["x-container-meta-owner"] == "team-a"
    assert headers["x-container-meta-cloudtmpl-stack"] == "st"
    assert _call(token, url + "/st.logs", "HEAD")[1]["x-versions-enabled"] == "True"

    r = run(tmp_path, "plan", "st.yaml", "--format", "json", "--detailed-exitcode")
    assert r.code == 0, r.err + r.out
    plan = r.json()
    assert plan["summary"]["no-op"] == 2
    print(f"no-op plan of 2 Swift buckets: {plan['stats']['api_requests']} API requests")

    # update in place: metadata and versioning
    template.write_text(TEMPLATE.replace("owner: team-a", "owner: team-b")
                        .replace("versioning: true", "versioning: false"))
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert "update" in r.out
    assert _call(token, url + "/st.data", "HEAD")[1]["x-container-meta-owner"] == "team-b"
    assert _call(token, url + "/st.logs", "HEAD")[1]["x-versions-enabled"] == "False"
    assert run(tmp_path, "plan", "st.yaml", "--detailed-exitcode").code == 0

    # a container with objects is not deleted unless PurgeOnDelete/force says so
    assert _call(token, url + "/st.data/report.csv", "PUT", b"a,b\n")[0] == 201
    r = run(tmp_path, "apply", "st.yaml", "--yes")  # nothing changes; outputs read again
    assert r.code == 0, r.err + r.out
    outputs = run(tmp_path, "outputs", "-s", "st", "--format", "json").json()
    assert (outputs["data_count"], outputs["data_bytes"]) == (1, 4)
    r = run(tmp_path, "destroy", "st.yaml", "--yes")
    assert r.code == 1
    assert "container st.data (data) is not empty" in r.out + r.err
    assert _call(token, url + "/st.data", "HEAD")[0] == 204
    assert _call(token, url + "/st.logs", "HEAD")[0] == 404

    template.write_text(TEMPLATE.replace("X-Container-Meta: {owner: team-a}",
                                         "X-Container-Meta: {owner: team-a}\n"
                                         "      PurgeOnDelete: true"))
    r = run(tmp_path, "apply", "st.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    r = run(tmp_path, "destroy", "st.yaml", "--yes")
    assert r.code == 0, r.err + r.out
    assert _call(token, url + "/st.data", "HEAD")[0] == 404
    status, _, body = _call(token, url + "?format=json")
    assert status == 204 or json.loads(body) == []
