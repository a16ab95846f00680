"""Talking to the OpenStack sandbox directly (its REST API and a libcloud driver), for
tests that look inside it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from libcloud.compute.base import NodeImage
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState, Provider

from cloudtmpl_sandbox import control

REPO = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((REPO / "providers" / "sandbox-openstack.yaml").read_text())


def driver(info: dict[str, Any], region: str = "de-fra-1", password: str | None = None) -> Any:
    cls = get_driver(Provider.OPENSTACK)
    return cls(
        info["username"],
        password or info["password"],
        ex_force_auth_url=info["auth_url"],
        ex_force_auth_version="3.x_password",
        ex_tenant_name=info["project_name"],
        ex_domain_name=info["user_domain_name"],
        ex_force_service_region=region,
        api_version="2.2",
    )


def http(
    info: dict[str, Any], method: str, path: str, body: Any = None, token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(info["endpoint"] + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    if path.startswith("/_sandbox/"):  # the control endpoints need the sandbox's token
        req.add_header(control.TOKEN_HEADER, info["token"])
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, got, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, got, raw = err.code, dict(err.headers), err.read()
    is_json = got.get("Content-Type", "").startswith("application/json")
    return status, got, json.loads(raw) if is_json and raw else raw.decode()


def token(info: dict[str, Any]) -> str:
    auth = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": info["username"],
                        "domain": {"name": "Default"},
                        "password": info["password"],
                    }
                },
            },
            "scope": {"project": {"name": info["project_name"], "domain": {"id": "default"}}},
        }
    }
    status, headers, _ = http(info, "POST", "/identity/v3/auth/tokens", auth)
    assert status == 201
    return headers["X-Subject-Token"]


def configure(info: dict[str, Any], **knobs: Any) -> dict[str, Any]:
    status, _, body = http(info, "POST", "/_sandbox/config", knobs)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def sizes(d: Any) -> dict[str, Any]:
    return {s.name: s for s in d.list_sizes()}


def image(d: Any, name: str = "ubuntu-22.04") -> NodeImage:
    return d.get_image(CATALOG["images"][name])


def wait_for(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def boot(d: Any, name: str, **kwargs: Any) -> Any:
    node = d.create_node(name=name, size=sizes(d)["m1.tiny"], image=image(d), **kwargs)
    assert wait_for(lambda: d.ex_get_node_details(node.id).state == NodeState.RUNNING)
    return d.ex_get_node_details(node.id)


def _project_id(info: dict[str, Any]) -> str:
    d = driver(info)
    d.list_volumes()
    return str(d.volumev3_connection.request_path.rsplit("/", 1)[1])
