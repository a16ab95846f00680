"""OpenStack settings where openstacksdk keeps them, through the CLI against the emulator.

A plain ``type: openstack`` target (not ``sandbox-openstack``) named by ``cloud:``
reaches the emulator through a ``clouds.yaml`` entry in the project directory,
whose secrets sit in ``secure.yaml`` under ``~/.config/openstack`` (another
directory of openstacksdk's search path).  Application credentials are created
through the emulator's Keystone API first, as a user would with
``openstack application credential create``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.clitools import run, write
from tests.integration.keystone_api import creds_path, http, password_token

TEMPLATE = """\
heat_template_version: 2021-04-16
resources:
  sg:
    type: Cloud::Network::SecurityGroup
    properties:
      rules: [{protocol: tcp, port_range_min: 22, port_range_max: 22}]
  data:
    type: Cloud::Storage::Bucket
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (tmp_path / "home" / ".config" / "openstack").mkdir(parents=True)
    root.mkdir()
    write(root / "cloudtmpl.yaml", "providers:\n"
          "  os-x: {type: openstack, cloud: ci, catalog: sandbox-openstack}\n"
          "default_target: os-x\n")
    write(root / "stack.yaml", TEMPLATE)
    return root


def _env(project: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(project.parent / "home"), **extra}


def _clouds(project: Path, entry: dict[str, Any], secure: dict[str, Any] | None) -> None:
    write(project / "clouds.yaml", yaml.safe_dump({"clouds": {"ci": entry}}))
    secure_file = project.parent / "home" / ".config" / "openstack" / "secure.yaml"
    if secure is None:
        secure_file.unlink(missing_ok=True)
    else:
        write(secure_file, yaml.safe_dump({"clouds": {"ci": secure}}))


def _app_cred(info: dict[str, Any], name: str) -> dict[str, Any]:
    token, body = password_token(info)
    status, _, created = http(info, "POST", creds_path(body["user"]["id"]),
                              {"application_credential": {"name": name}}, token)
    assert status == 201, created
    return dict(created["application_credential"])


def _lookup(info: dict[str, Any], region: str) -> tuple[list[str], list[str]]:
    """(security group names, container names) in ``region``, seen with the API."""
    token, body = password_token(info)
    _, _, groups = http(info, "GET", f"/network/{region}/v2.0/security-groups", token=token)
    swift = f"/object-store/{region}/v1/AUTH_{body['project']['id']}?format=json"
    _, _, containers = http(info, "GET", swift, token=token)
    return (sorted(g["name"] for g in groups["security_groups"] if g["name"] != "default"),
            sorted(c["name"] for c in containers or []))


def _placed(project: Path, env: dict[str, str]) -> set[str]:
    r = run(project, "plan", "stack.yaml", "--format", "json", env=env)
    assert r.code == 0, r.err
    return {c["placement"]["region"] for c in r.json()["changes"]}


def test_application_credential_entry_with_secure_yaml_elsewhere(
        project: Path, openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    cred = _app_cred(info, "ci-runner")
    _clouds(project, {"auth_type": "v3applicationcredential", "region_name": "nl-ams-1",
                      "auth": {"auth_url": info["auth_url"] + "/v3",
                               "application_credential_id": cred["id"]}},
            {"auth": {"application_credential_secret": cred["secret"]}})
    env = _env(project)
    assert _placed(project, env) == {"nl-ams-1"}  # the entry's region_name
    r = run(project, "apply", "stack.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert cred["secret"] not in r.out + r.err
    assert _lookup(info, "nl-ams-1") == (["stack.sg"], ["stack.data"])
    assert _lookup(info, "de-fra-1") == ([], [])
    r = run(project, "plan", "stack.yaml", "--detailed-exitcode", env=env)
    assert r.code == 0, r.err + r.out

    # by name and owner instead of id
    _clouds(project, {"auth_type": "v3applicationcredential", "region_name": "nl-ams-1",
                      "auth": {"auth_url": info["auth_url"],
                               "application_credential_name": "ci-runner",
                               "username": info["username"], "user_domain_name": "Default"}},
            {"auth": {"application_credential_secret": cred["secret"]}})
    r = run(project, "plan", "stack.yaml", "--detailed-exitcode", env=env)
    assert r.code == 0, r.err + r.out

    # the secret is what authenticates: a wrong one is Keystone's 401, without the secret
    _clouds(project, {"auth_type": "v3applicationcredential", "region_name": "nl-ams-1",
                      "auth": {"auth_url": info["auth_url"],
                               "application_credential_id": cred["id"]}},
            {"auth": {"application_credential_secret": "not-the-secret"}})
    r = run(project, "plan", "stack.yaml", env=env)
    assert r.code == 1 and "Traceback" not in r.err
    assert "401" in r.err and f"application credential '{cred['id']}'" in r.err
    assert "not-the-secret" not in r.err
    # and without secure.yaml the entry lacks it
    _clouds(project, {"auth_type": "v3applicationcredential", "region_name": "nl-ams-1",
                      "auth": {"auth_url": info["auth_url"],
                               "application_credential_id": cred["id"]}}, None)
    r = run(project, "plan", "stack.yaml", env=env)
    assert r.code == 1 and "application_credential_secret" in r.err

    _clouds(project, {"auth_type": "v3applicationcredential", "region_name": "nl-ams-1",
                      "auth": {"auth_url": info["auth_url"],
                               "application_credential_id": cred["id"]}},
            {"auth": {"application_credential_secret": cred["secret"]}})
    r = run(project, "destroy", "stack.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert _lookup(info, "nl-ams-1") == ([], [])


def test_token_entry_and_os_region_name(project: Path,
                                        openstack_reset: dict[str, Any]) -> None:
    info = openstack_reset
    token, _ = password_token(info)
    _clouds(project, {"auth_type": "v3token",
                      "regions": ["nl-ams-1", "de-fra-1"],
                      "auth": {"auth_url": info["auth_url"], "project_name": "sandbox",
                               "project_domain_name": "Default"}},
            {"auth": {"token": token}})
    env = _env(project)
    assert _placed(project, env) == {"nl-ams-1"}  # the first of the entry's regions
    env = _env(project, OS_REGION_NAME="de-fra-1")  # what openstack --os-region-name reads
    r = run(project, "apply", "stack.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out
    assert token not in r.out + r.err
    assert _lookup(info, "de-fra-1") == (["stack.sg"], ["stack.data"])
    # an OS_REGION_NAME the entry does not list is refused before any cloud is asked
    r = run(project, "plan", "stack.yaml", env=_env(project, OS_REGION_NAME="xx-nowhere-1"))
    assert r.code == 1 and "Traceback" not in r.err
    assert "config-openstack-settings" in r.err and "nl-ams-1, de-fra-1" in r.err
    r = run(project, "destroy", "stack.yaml", "--yes", env=env)
    assert r.code == 0, r.err + r.out


def test_unknown_auth_type_is_a_diagnostic_in_clouds_yaml(project: Path) -> None:
    write(project / "clouds.yaml", "clouds:\n  ci:\n    auth_type: v3oidcpassword\n"
          "    auth: {auth_url: 'http://127.0.0.1:9/v3'}\n")
    r = run(project, "validate", "stack.yaml", env=_env(project))
    assert r.code == 1 and "Traceback" not in r.err
    assert f"{project / 'clouds.yaml'}:3:5" in r.err
    assert "openstack-auth-type" in r.err and "'v3oidcpassword'" in r.err
    for supported in ("password", "v3password", "v3applicationcredential", "token", "v3token"):
        assert supported in r.err
