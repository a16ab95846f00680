"""python-openstackclient (the real ``openstack`` command) builds a routed network on
the emulator: router, interface, gateway, port, floating IP, and Neutron's refusal of
a floating IP no router reaches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

OPENSTACK = shutil.which("openstack", path=str(Path(sys.executable).parent))


def cli(info: dict[str, Any], *args: str, ok: bool = True, quiet: bool = False) -> Any:
    """``openstack ARGS`` (its JSON answer; ``quiet``: a command that prints nothing;
    ``ok=False``: it must fail, its stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({"OS_AUTH_URL": info["auth_url"], "OS_USERNAME": info["username"],
                "OS_PASSWORD": info["password"], "OS_PROJECT_NAME": info["project_name"],
                "OS_USER_DOMAIN_NAME": info["user_domain_name"],
                "OS_PROJECT_DOMAIN_NAME": info["project_domain_name"],
                "OS_REGION_NAME": "de-fra-1", "OS_IDENTITY_API_VERSION": "3",
                "OS_INTERFACE": "public"})
    assert OPENSTACK is not None
    fmt = ["-f", "json"] if ok and not quiet else []
    proc = subprocess.run([OPENSTACK, *args, *fmt], env=env, capture_output=True, text=True,
                          timeout=120)
    if not ok:
        assert proc.returncode != 0, proc.stdout
        return proc.stderr
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


@pytest.mark.skipif(OPENSTACK is None, reason="python-openstackclient is not installed")
def test_openstackclient_routes_a_network(openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    assert "router" in {e["Alias"] for e in cli(info, "extension", "list", "--network")}
    net = cli(info, "network", "create", "app")
    sub = cli(info, "subnet", "create", "app-sub", "--network", net["id"],
              "--subnet-range", "10.50.0.0/24")
    port = cli(info, "port", "create", "p", "--network", net["id"])
    refused = cli(info, "floating", "ip", "create", "public", "--port", port["id"], ok=False)
    assert f"is not reachable from subnet {sub['id']}" in refused
    router = cli(info, "router", "create", "r")
    cli(info, "router", "add", "subnet", router["id"], sub["id"], quiet=True)
    cli(info, "router", "set", router["id"], "--external-gateway", "public", quiet=True)
    shown = cli(info, "router", "show", router["id"])
    assert shown["external_gateway_info"]["enable_snat"] is True
    fip = cli(info, "floating", "ip", "create", "public", "--port", port["id"])
    assert fip["router_id"] == router["id"] and fip["fixed_ip_address"] == "10.50.0.2"
    in_use = cli(info, "router", "remove", "subnet", router["id"], sub["id"], ok=False)
    assert "required by one or more floating IPs" in in_use
    cli(info, "floating", "ip", "delete", fip["id"], quiet=True)
    cli(info, "router", "remove", "subnet", router["id"], sub["id"], quiet=True)
    cli(info, "router", "delete", router["id"], quiet=True)
    assert [r["Name"] for r in cli(info, "router", "list")] == ["default"]
