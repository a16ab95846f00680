"""Lifecycle hooks (the drain before a server goes away) against sshd-backed sandbox servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl_sandbox.sshd import sshd_path
from tests.integration.clitools import invoke, write
from tests.integration.hooks import events, roots, stamp

pytestmark = pytest.mark.skipif(sshd_path() is None, reason="needs openssh-server "
                                "(scripts/test.sh installs it)")

TEMPLATE = """\
heat_template_version: 2021-04-16
parameters:
  image: {type: string, default: ubuntu-22.04}
  on_failure: {type: string, default: abort}
  script: {type: string, default: 'date +%s.%N > "$SERVER_ROOT/drained"; echo drained'}
placement: {provider: sandbox-openstack, region: de-fra-1}
resources:
  key: {type: Cloud::Compute::KeyPair}
  web:
    type: Cloud::Compute::Server
    lifecycle:
      create_before_destroy: true
      pre_replace:
        script: {get_param: script}
        timeout: 30
        on_failure: {get_param: on_failure}
        ssh: {key_pair: hooks.key}
      pre_delete:
        script: 'echo bye > "$SERVER_ROOT/deleted"'
        ssh: {key_pair: hooks.key}
    properties: {image: {get_param: image}, flavor: tiny, key_name: {get_resource: key}}
  web_ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: web}, floating_network: public}
"""








def test_pre_replace_drains_the_old_server_after_the_new_one_is_up(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "hooks.yaml", TEMPLATE)
    assert invoke(tmp_path, "apply", "hooks.yaml", "--yes").code == 0
    [(old_id, old_root)] = roots(openstack_reset).items()
    r = invoke(tmp_path, "apply", "hooks.yaml", "-p", "image=debian-12", "--yes",
               "--format", "json")
    assert r.code == 0, r.err + r.out
    [(new_id, new_root)] = roots(openstack_reset).items()
    assert new_id != old_id
    # proven on the hosts: the new server was up, then the old one drained, then deleted
    assert stamp(new_root, "booted") < stamp(old_root, "drained") < stamp(old_root, "halted")
    assert not (new_root / "drained").exists()
    seen = [(e["event"], e["action"], e["address"], e.get("message", ""))
            for e in events(r.out) if e["event"] != "result"]
    order = [f"{ev} {act} {addr}" for ev, act, addr, _ in seen]
    # the new server is up, the address moves to it, then the old one is drained and
    # deleted (the address never points at nothing)
    assert order.index("done create web") < order.index("start update web_ip")
    assert order.index("done update web_ip") < order.index("done hook web")
    assert order.index("done hook web") < order.index("start delete web")
    assert any("running its pre_replace hook" in msg for *_, msg in seen)
    log = (tmp_path / ".cloudtmpl" / "logs" / "hooks" / "web.pre_replace.log").read_text()
    assert "exit status 0" in log and "drained" in log
    assert invoke(tmp_path, "plan", "hooks.yaml", "-p", "image=debian-12",
                  "--detailed-exitcode").code == 0
    # the floating IP moved with the replacement: the new server's drain reaches it
    r = invoke(tmp_path, "destroy", "hooks.yaml", "-p", "image=debian-12", "--yes")
    assert r.code == 0, r.out + r.err
    assert (new_root / "deleted").read_text() == "bye\n"
    assert stamp(new_root, "booted") < stamp(new_root, "halted")


def test_pre_delete_runs_on_destroy_before_the_address_goes(
        tmp_path: Path, openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "hooks.yaml", TEMPLATE)
    assert invoke(tmp_path, "apply", "hooks.yaml", "--yes").code == 0
    r = invoke(tmp_path, "destroy", "hooks.yaml", "--yes")
    assert r.code == 0, r.out + r.err
    assert r.out.index("done hook web") < r.out.index("delete web_ip")
    log = (tmp_path / ".cloudtmpl" / "logs" / "hooks" / "web.pre_delete.log").read_text()
    assert "exit status 0" in log


def test_a_failing_drain_keeps_the_server(tmp_path: Path,
                                          openstack_reset: dict[str, Any]) -> None:
    write(tmp_path / "hooks.yaml", TEMPLATE)
    assert invoke(tmp_path, "apply", "hooks.yaml", "--yes").code == 0
    [old_id] = roots(openstack_reset)
    r = invoke(tmp_path, "apply", "hooks.yaml", "-p", "image=debian-12", "-p",
               "script=exit 3", "--yes", "--format", "json")
    assert r.code == 1
    failed = [e for e in events(r.out) if e["event"] == "failed"]
    assert [e["action"] for e in failed] == ["hook"]
    assert "pre_replace hook failed, so the server is kept" in failed[0]["message"]
    assert "exited with status 3" in failed[0]["message"]
    skipped = {(e["address"], e["action"]) for e in events(r.out) if e["event"] == "skipped"}
    assert skipped == {("web", "delete")}  # the old server is kept
    # the address had moved to the new server before the drain: it stays there
    done = {(e["address"], e["action"]) for e in events(r.out) if e["event"] == "done"}
    assert ("web_ip", "update") in done and ("web", "create") in done
    servers = roots(openstack_reset)
    assert len(servers) == 2 and old_id in servers  # the old one still runs
    # the next run removes the server it kept (a second live copy of web) and is done
    r = invoke(tmp_path, "apply", "hooks.yaml", "-p", "image=debian-12", "--yes")
    assert r.code == 0, r.out + r.err
    [last] = roots(openstack_reset)
    assert last != old_id, r.out
    assert invoke(tmp_path, "plan", "hooks.yaml", "-p", "image=debian-12",
                  "--detailed-exitcode").code == 0
