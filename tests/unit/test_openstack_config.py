"""OpenStack credential resolution: clouds.yaml search path, secure.yaml, auth types, OS_*,
default regions (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudtmpl.model import Target
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.openstack.auth import OpenStackAuth, load_clouds_yaml, resolve_auth
from cloudtmpl.settings.openstack import (
    CloudsYamlError,
    clouds_yaml_paths,
    default_region,
    find_cloud,
    secure_yaml_paths,
)

AUTH = {"auth_url": "https://keystone.example/v3", "username": "alice", "password": "pw",
        "project_name": "web", "user_domain_name": "Users", "project_domain_name": "Projects"}


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def target(**options: Any) -> Target:
    return Target(name="os-fra", type="openstack", region="RegionOne", options=options)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    cwd, home = tmp_path / "project", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    return cwd, home


def test_search_path_order(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    dirs = [cwd, home / ".config/openstack", Path("/etc/openstack")]
    assert clouds_yaml_paths({}, cwd, home) == [
        d / f"clouds{suffix}" for d in dirs for suffix in (".yaml", ".yml", ".json")]
    env = {"OS_CLIENT_CONFIG_FILE": "/x/my.yaml", "OS_CLIENT_SECURE_FILE": "/x/sec.yaml"}
    assert clouds_yaml_paths(env, cwd, home)[0] == Path("/x/my.yaml")
    # secure.yaml: the same directories, its own override first
    assert secure_yaml_paths(env, cwd, home)[:3] == [
        Path("/x/sec.yaml"), cwd / "secure.yaml", cwd / "secure.yml"]
    xdg = clouds_yaml_paths({"XDG_CONFIG_HOME": "/xdg"}, cwd, home)
    assert xdg[3] == Path("/xdg/openstack/clouds.yaml")


def test_cloud_from_the_first_file_that_names_it(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    write(cwd / "clouds.yaml", {"clouds": {"fra": {"auth": {**AUTH, "username": "local"},
                                                   "region_name": "RegionOne"}}})
    write(home / ".config/openstack/clouds.yaml",
          {"clouds": {"fra": {"auth": AUTH}, "ams": {"auth": {**AUTH, "username": "bob"},
                                                     "regions": ["ams-1", "ams-2"]}}})
    fra = resolve_auth(target(cloud="fra"), {}, cwd, home)
    assert fra.username == "local" and fra.region_name == "RegionOne"
    assert fra.source == str(cwd / "clouds.yaml")
    ams = resolve_auth(target(cloud="ams"), {}, cwd, home)
    assert ams.username == "bob" and ams.region_name == "ams-1"
    # OS_CLIENT_CONFIG_FILE comes first
    special = write(cwd / "special.yaml", {"clouds": {"fra": {"auth": {**AUTH,
                                                                       "username": "env"}}}})
    env = {"OS_CLIENT_CONFIG_FILE": str(special)}
    assert resolve_auth(target(cloud="fra"), env, cwd, home).username == "env"


def test_secure_yaml_is_merged(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    public = {k: v for k, v in AUTH.items() if k != "password"}
    write(cwd / "clouds.yaml", {"clouds": {"fra": {"auth": public}}})
    with pytest.raises(CloudError, match="lacks password"):
        resolve_auth(target(cloud="fra"), {}, cwd, home)
    write(cwd / "secure.yaml", {"clouds": {"fra": {"auth": {"password": "s3cret"}}}})
    auth = resolve_auth(target(cloud="fra"), {}, cwd, home)
    assert auth.password == "s3cret" and auth.username == "alice"
    assert "secure.yaml" in auth.source
    assert "s3cret" not in repr(auth)  # never printed


def test_secure_yaml_is_found_in_another_directory(dirs: tuple[Path, Path]) -> None:
    """clouds.yaml in the project, secure.yaml in ~/.config/openstack (openstacksdk's rule)."""
    cwd, home = dirs
    public = {k: v for k, v in AUTH.items() if k != "password"}
    write(cwd / "clouds.yaml", {"clouds": {"fra": {"auth": public}}})
    secure = write(home / ".config/openstack/secure.yaml",
                   {"clouds": {"fra": {"auth": {"password": "from-home"}}}})
    auth = resolve_auth(target(cloud="fra"), {}, cwd, home)
    assert auth.password == "from-home" and auth.username == "alice"
    assert auth.source == f"{cwd / 'clouds.yaml'} + {secure}"
    # the first secure file of the search path wins (the project's before home's) ...
    (cwd / "secure.json").write_text(
        json.dumps({"clouds": {"fra": {"auth": {"password": "from-project"}}}}))
    assert resolve_auth(target(cloud="fra"), {}, cwd, home).password == "from-project"
    # ... and OS_CLIENT_SECURE_FILE before all of them
    other = write(cwd / "elsewhere" / "s.yaml", {"clouds": {"fra": {"auth": {"password": "env"}}}})
    env = {"OS_CLIENT_SECURE_FILE": str(other)}
    assert resolve_auth(target(cloud="fra"), env, cwd, home).password == "env"


def test_application_credential_entries(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    url = "https://keystone.example:5000/v3"
    write(cwd / "clouds.yaml", {"clouds": {
        "by-id": {"auth_type": "v3applicationcredential",
                  "auth": {"auth_url": url, "application_credential_id": "ac1",
                           "application_credential_secret": "ac-secret"}},
        "by-name": {"auth-type": "v3applicationcredential",  # openstacksdk normalises '-'
                    "auth": {"auth_url": url, "application_credential_name": "ci",
                             "username": "alice", "user_domain_name": "Users",
                             "application_credential_secret": "ac-secret"}},
        "no-owner": {"auth_type": "v3applicationcredential",
                     "auth": {"auth_url": url, "application_credential_name": "ci",
                              "application_credential_secret": "x"}},
    }})
    by_id = resolve_auth(target(cloud="by-id"), {}, cwd, home)
    assert by_id.method == "application_credential" and "ac-secret" not in repr(by_id)
    assert by_id.auth_body() == {"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": "ac1", "secret": "ac-secret"}}}}  # no scope
    key, secret, args = by_id.libcloud_args()
    assert (key, secret, args["ex_force_auth_version"]) == ("ac1", "ac-secret", "3.x_appcred")
    assert args["ex_force_auth_url"] == "https://keystone.example:5000"
    by_name = resolve_auth(target(cloud="by-name"), {}, cwd, home)
    assert by_name.auth_body()["auth"]["identity"]["application_credential"] == {
        "name": "ci", "secret": "ac-secret",
        "user": {"name": "alice", "domain": {"name": "Users"}}}
    assert by_name.who == "application credential 'ci'"
    with pytest.raises(CloudError, match="user_id \\(or username\\)"):
        resolve_auth(target(cloud="no-owner"), {}, cwd, home)


def test_token_entries_and_the_os_environment(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    write(cwd / "clouds.yaml", {"clouds": {
        "tok": {"auth_type": "v3token",
                "auth": {"auth_url": "https://k/v3", "token": "gAAAA-tok",
                         "project_id": "p1"}},
        "unscoped": {"auth_type": "token", "auth": {"auth_url": "https://k/v3",
                                                    "token": "t"}}}})
    tok = resolve_auth(target(cloud="tok"), {}, cwd, home)
    assert tok.auth_body() == {"auth": {"identity": {"methods": ["token"],
                                                     "token": {"id": "gAAAA-tok"}},
                                        "scope": {"project": {"id": "p1"}}}}
    assert tok.libcloud_args()[1] == "gAAAA-tok" and "gAAAA" not in repr(tok)
    with pytest.raises(CloudError, match="project_name \\(or project_id\\)"):
        resolve_auth(target(cloud="unscoped"), {}, cwd, home)
    env = {"OS_AUTH_URL": "https://k/v3", "OS_AUTH_TYPE": "v3applicationcredential",
           "OS_APPLICATION_CREDENTIAL_ID": "ac9", "OS_APPLICATION_CREDENTIAL_SECRET": "s"}
    from_env = resolve_auth(target(), env, cwd, home)
    assert (from_env.method, from_env.application_credential_id) == (
        "application_credential", "ac9")


def test_unknown_auth_type_names_the_supported_ones(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    write(cwd / "clouds.yaml", {"clouds": {"sso": {"auth_type": "v3oidcpassword",
                                                   "auth": AUTH}}})
    with pytest.raises(CloudError) as info:
        resolve_auth(target(cloud="sso"), {}, cwd, home)
    msg = info.value.message
    assert info.value.permanent and "'v3oidcpassword'" in msg and "'os-fra'" in msg
    for supported in ("password", "v3applicationcredential", "v3token"):
        assert supported in msg
    env = {"OS_AUTH_URL": "https://k/v3", "OS_AUTH_TYPE": "v2password"}
    with pytest.raises(CloudError, match="v2password"):
        resolve_auth(target(), env, cwd, home)


def test_default_region(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    write(cwd / "clouds.yaml", {"clouds": {
        "one": {"auth": AUTH, "region_name": "RegionOne"},
        "two": {"auth": AUTH, "regions": ["fra-1", {"name": "ams-1", "values": {}}]},
        "none": {"auth": AUTH}}})

    def region(cloud: str, env: dict[str, str]) -> str | None:
        return default_region(find_cloud(cloud, env, cwd, home), env)[0]

    assert region("one", {}) == "RegionOne"
    assert region("two", {}) == "fra-1"
    assert region("none", {}) is None
    assert region("two", {"OS_REGION_NAME": "ams-1"}) == "ams-1"  # like --os-region-name
    assert region("none", {"OS_REGION_NAME": "anywhere"}) == "anywhere"
    with pytest.raises(CloudsYamlError, match="fra-1, ams-1"):
        region("two", {"OS_REGION_NAME": "lon-1"})
    assert default_region(None, {"OS_REGION_NAME": "r"}) == ("r", "OS_REGION_NAME")


def test_os_cloud_names_the_entry(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    write(cwd / "clouds.yaml", {"clouds": {"ci": {"auth": AUTH}}})
    assert resolve_auth(target(), {"OS_CLOUD": "ci"}, cwd, home).username == "alice"
    # the target's own `cloud` wins over OS_CLOUD
    with pytest.raises(CloudError, match="'fra'"):
        resolve_auth(target(cloud="fra"), {"OS_CLOUD": "ci"}, cwd, home)


def test_missing_cloud_names_the_target_and_the_files_searched(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    with pytest.raises(CloudError) as info:
        load_clouds_yaml("os-fra", "nope", {}, cwd, home)
    msg = info.value.message
    assert info.value.permanent
    assert "'os-fra'" in msg and "'nope'" in msg
    assert str(cwd / "clouds.yaml") in msg and str(home / ".config/openstack/clouds.yaml") in msg
    assert "/etc/openstack/clouds.yaml" in msg


def test_missing_fields_are_named(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    write(cwd / "clouds.yaml", {"clouds": {"fra": {"auth": {"auth_url": "https://k/v3"}}}})
    with pytest.raises(CloudError) as info:
        resolve_auth(target(cloud="fra"), {}, cwd, home)
    msg = info.value.message
    assert "'os-fra'" in msg and "username" in msg and "password" in msg
    assert "project_name (or project_id)" in msg and str(cwd / "clouds.yaml") in msg


def test_os_environment_variables(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    env = {"OS_AUTH_URL": "https://k:5000/v3/", "OS_USERNAME": "u", "OS_PASSWORD": "p",
           "OS_PROJECT_NAME": "proj", "OS_USER_DOMAIN_NAME": "Default",
           "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": "RegionOne"}
    auth = resolve_auth(target(), env, cwd, home)
    assert (auth.username, auth.project_name, auth.region_name) == ("u", "proj", "RegionOne")
    assert auth.identity_url == "https://k:5000"  # libcloud appends /v3/auth/tokens
    del env["OS_PASSWORD"]
    with pytest.raises(CloudError, match="password"):
        resolve_auth(target(), env, cwd, home)


def test_nothing_configured_explains_every_way(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    with pytest.raises(CloudError) as info:
        resolve_auth(target(), {}, cwd, home)
    msg = info.value.message
    assert "'os-fra'" in msg and "OS_CLOUD" in msg and "OS_AUTH_URL" in msg
    assert str(cwd / "clouds.yaml") in msg


def test_sandbox_targets_take_their_options(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    t = Target(name="sandbox-openstack", type="openstack", options=AUTH, sandbox=True)
    assert resolve_auth(t, {"OS_CLOUD": "ignored"}, cwd, home).username == "alice"
    # outside the sandbox, secrets in cloudtmpl.yaml options are not used
    with pytest.raises(CloudError, match="no OpenStack credentials"):
        resolve_auth(target(**AUTH), {}, cwd, home)


def test_auth_body_scopes() -> None:
    by_name = OpenStackAuth(**AUTH)
    body = by_name.auth_body()["auth"]
    assert body["identity"]["password"]["user"] == {"name": "alice", "password": "pw",
                                                    "domain": {"name": "Users"}}
    assert body["scope"] == {"project": {"name": "web", "domain": {"name": "Projects"}}}
    by_id = OpenStackAuth(auth_url="u", username="a", password="p", project_id="p1",
                          user_domain_id="d1")
    body = by_id.auth_body()["auth"]
    assert body["identity"]["password"]["user"]["domain"] == {"id": "d1"}
    assert body["scope"] == {"project": {"id": "p1"}}
    # domain_name in clouds.yaml stands for both domains
    common = OpenStackAuth(auth_url="u", username="a", password="p", project_name="x")
    assert common.auth_body()["auth"]["scope"]["project"]["domain"] == {"name": "Default"}


def test_domain_name_applies_to_both_domains(dirs: tuple[Path, Path]) -> None:
    cwd, home = dirs
    entry = {k: v for k, v in AUTH.items() if "domain" not in k}
    write(cwd / "clouds.yaml", {"clouds": {"fra": {"auth": {**entry, "domain_name": "Corp"}}}})
    auth = resolve_auth(target(cloud="fra"), {}, cwd, home)
    assert auth.user_domain_name == "Corp" and auth.project_domain_name == "Corp"
