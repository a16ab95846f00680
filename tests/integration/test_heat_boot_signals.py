"""Heat templates whose servers configure themselves at boot and signal back, end to
end on sandbox-openstack through the CLI: the sandbox servers run their user data as
cloud-init would, the user data sends its signals with the handle's ``curl_cli`` to
the signal object in Swift, and apply waits for them.

* A WordPress-style pair (``examples/heat/wordpress_two_servers.yaml``): the
  database server's address reaches the web server's user data through
  ``{get_attr: [db_server, networks, private, 0]}``; the web server writes it into its
  configuration and signals; the stack's URL and the signal's data carry the real
  address, read back from Nova and from the web server's own files.
* The template guide's wait-condition example (six signals, two with one id, so a
  count of five), its swift-signal variant and its MultipartMime example
  (``tests/corpus/heat_guide/``): apply, a no-op plan, destroy.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudtmpl_sandbox import control
from tests.integration.clitools import REPO, invoke
from tests.integration.openstack_api import http, token

pytestmark = pytest.mark.integration

WORDPRESS = REPO / "examples" / "heat" / "wordpress_two_servers.yaml"
GUIDE = REPO / "tests" / "corpus" / "heat_guide"
TARGET = "sandbox-openstack/de-fra-1"


def _servers(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status, _, body = http(info, "GET", "/compute/de-fra-1/v2.1/servers/detail",
                           token=token(info))
    assert status == 200, body
    return {s["name"]: s for s in body["servers"]}


def _boot_root(info: dict[str, Any], server_id: str) -> Path:
    status, boots = control.call(info["endpoint"], info["token"], "GET", "/_sandbox/boots")
    assert status == 200, boots
    return Path(boots[server_id]["root"])


def _apply_noop_outputs(project: Path, template: str) -> dict[str, Any]:
    r = invoke(project, "apply", template, "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    r = invoke(project, "plan", template, "--target", TARGET, "--detailed-exitcode")
    assert r.code == 0, r.out + r.err  # converged, and the condition is not waited for again
    return invoke(project, "outputs", "-s", Path(template).stem, "--format", "json").json()


def _destroy(project: Path, template: str, info: dict[str, Any]) -> None:
    r = invoke(project, "destroy", template, "--target", TARGET, "--yes")
    assert r.code == 0, r.err + r.out
    stack = Path(template).stem
    assert not [n for n in _servers(info) if n.startswith(f"{stack}.")]
    status, _, body = http(info, "GET", "/object-store/de-fra-1/v1/AUTH_sandbox?format=json",
                           token=token(info))
    if status == 200:  # nothing of the stack's left in Swift either
        assert not [c["name"] for c in body if c["name"].startswith(f"{stack}.")], body


def test_wordpress_two_servers_get_the_real_database_address(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    shutil.copy(WORDPRESS, tmp_path / WORDPRESS.name)
    out = _apply_noop_outputs(tmp_path, WORDPRESS.name)

    servers = _servers(openstack_reset)
    db = servers["wordpress_two_servers.db_server"]
    web = servers["wordpress_two_servers.web_server"]
    (db_ip,) = [a["addr"] for a in db["addresses"]["private"]]
    (web_ip,) = [a["addr"] for a in web["addresses"]["private"]]
    assert db_ip and web_ip and db_ip != web_ip
    assert out["WebsiteURL"] == f"http://{web_ip}/wordpress", out
    assert out["db_address"] == db_ip, out
    # the signal the web server's boot script sent carries what it was given
    assert out["configured_with"] == {"1": db_ip}, out
    config = (_boot_root(openstack_reset, web["id"]) / "wp-config.php").read_text()
    assert f"define('DB_HOST', '{db_ip}');" in config, config
    assert "define('DB_NAME', 'wordpress');" in config, config
    assert (_boot_root(openstack_reset, db["id"]) / "db_name").read_text() == "wordpress\n"
    _destroy(tmp_path, WORDPRESS.name, openstack_reset)


@pytest.mark.parametrize("name, expected", [
    ("wait_condition.yaml", {
        "wc_data": {"1": None, "2": None, "3": "data3", "id4": "data4", "id5": None},
        "wc_data_4": "data4"}),
    ("swift_signal.yaml", {"data": {"1": "swift"}}),
    ("multipart_mime.yaml", {}),
])
def test_the_template_guides_boot_examples_run(
        tmp_path: Path, openstack_reset: dict[str, Any], name: str,
        expected: dict[str, Any]) -> None:
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    shutil.copy(GUIDE / name, tmp_path / name)
    r = invoke(tmp_path, "validate", name)
    assert r.code == 0, r.out + r.err
    out = _apply_noop_outputs(tmp_path, name)
    assert out == expected, out
    if name == "multipart_mime.yaml":
        (server,) = [s for n, s in _servers(openstack_reset).items()
                     if n.startswith("multipart_mime.")]
        root = _boot_root(openstack_reset, server["id"])
        assert (root / "tmp" / "file").read_text() == "written by cloud-config"
    _destroy(tmp_path, name, openstack_reset)


def test_the_guides_wait_condition_runs_unchanged_on_aws(
        tmp_path: Path, aws_reset: dict[str, Any]) -> None:
    """The same template on sandbox-aws: the handle is a versioned S3 bucket and its
    curl_cli a presigned PUT; the EC2 instance's user data sends the six signals."""
    (tmp_path / "cloudtmpl.yaml").write_text("providers: {}\n")
    name = "wait_condition.yaml"
    shutil.copy(GUIDE / name, tmp_path / name)
    target = "sandbox-aws/eu-central-1"
    r = invoke(tmp_path, "apply", name, "--target", target, "--yes")
    assert r.code == 0, r.err + r.out
    r = invoke(tmp_path, "plan", name, "--target", target, "--detailed-exitcode")
    assert r.code == 0, r.out + r.err
    out = invoke(tmp_path, "outputs", "-s", "wait_condition", "--format", "json").json()
    assert out == {
        "wc_data": {"1": None, "2": None, "3": "data3", "id4": "data4", "id5": None},
        "wc_data_4": "data4"}, out
    s3 = boto3.client("s3", endpoint_url=aws_reset["endpoint"], region_name="eu-central-1",
                      aws_access_key_id=aws_reset["access_key"],
                      aws_secret_access_key=aws_reset["secret_key"])
    assert s3.list_buckets().get("Buckets"), "the handle's bucket"
    r = invoke(tmp_path, "destroy", name, "--target", target, "--yes")
    assert r.code == 0, r.err + r.out
    assert s3.list_buckets().get("Buckets", []) == []  # the handle's bucket is gone
