"""Stack-wide SSH defaults (the template's top-level ``ssh:``), ``ssh.via``, and the rule
that a change of only connection settings does not re-run a deployment's script.

Pure pieces (schema, resolve, address choice, plan) plus the executor driving the real
DeployAdapter whose SSH runner is replaced by a recorder (no sshd involved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloudtmpl import resources, software_kinds
from cloudtmpl.apply import Event, Executor
from cloudtmpl.catalog import Catalog
from cloudtmpl.config import SANDBOX_TARGETS
from cloudtmpl.desired import RefContext, desired_spec
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc
from cloudtmpl.discover import Discovery
from cloudtmpl.functions import GetResource
from cloudtmpl.loader import load_text
from cloudtmpl.model import Action, DesiredResource, LiveResource, Placement, Target, spec_hash
from cloudtmpl.plan import decide, make_plan
from cloudtmpl.providers import addresses, deploy
from cloudtmpl.providers.base import CloudError
from cloudtmpl.providers.local import LocalAdapter
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve, with_ssh_defaults
from cloudtmpl.schema import validate_template
from cloudtmpl.state import ResourceRecord, StateStore

HEAD = "heat_template_version: 2021-04-16\n"
DEPLOYMENT = software_kinds.DEPLOYMENT.kind


def run(text: str, files: dict[str, str] | None = None, **kw: Any) -> ResolvedStack:
    files = files or {}

    def read(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory")
        return files[path]

    options = ResolveOptions(**{"stack": "s", "target": "sandbox-aws",
                                "targets": SANDBOX_TARGETS, "read_file": read, **kw})
    return resolve(load_text(HEAD + text, "t.yaml"), options)


def fail(text: str, files: dict[str, str] | None = None, **kw: Any) -> list[Diagnostic]:
    with pytest.raises(DiagnosticError) as exc:
        run(text, files, **kw)
    return list(exc.value.diagnostics)


def at(diags: list[Diagnostic]) -> list[tuple[str, str, int, int]]:
    return [(d.code, d.loc.file, d.loc.line, d.loc.column) for d in diags]


# -------------------------------------------------------------------- the schema

def test_schema_accepts_every_setting_and_functions_as_values() -> None:
    text = HEAD + """\
ssh:
  user: {get_param: user}
  port: 2222
  key_file: keys/id_ops
  key_pair: s.key
  bastion: {host: jump.example.com, user: ops}
  timeout: 300
  via: private
"""
    assert validate_template(load_text(text, "t.yaml")) == []


def test_schema_refuses_unknown_keys_and_non_mappings_with_their_location() -> None:
    (d,) = validate_template(load_text(HEAD + "ssh:\n  user: ubuntu\n  usr: x\n", "t.yaml"))
    assert (d.code, d.loc.line, d.loc.column) == ("unknown-key", 4, 3)
    assert d.message == "unknown key in ssh: 'usr'"
    assert d.hint.startswith("did you mean 'user'?") and "via" in d.hint
    (d,) = validate_template(load_text(HEAD + "ssh: [ubuntu]\n", "t.yaml"))
    assert (d.code, d.loc.line, d.loc.column) == ("invalid-type", 2, 6)
    assert "ssh must be a mapping of SSH settings" in d.message and d.hint


# ------------------------------------------------------------- merging in resolve

MERGE = """\
parameters:
  login: {type: string, default: ubuntu}
ssh:
  user: {get_param: login}
  port: 2222
  timeout: 30
  via: private
resources:
  key: {type: Cloud::Compute::KeyPair}
  web:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: small, key_name: {get_resource: key}}
    lifecycle:
      pre_delete: {script: "echo drain", timeout: 10, ssh: {via: public}}
      pre_replace: {script: "echo drain"}
  own:
    type: Cloud::Software::Deployment
    properties:
      server: {get_resource: web}
      config: "echo hi"
      ssh: {key_pair: {get_resource: key}, port: 22, user: null}
  bare:
    type: OS::Heat::SoftwareDeployment
    properties: {server: {get_resource: web}, config: "echo hi"}
  many:
    type: Cloud::Software::DeploymentGroup
    properties: {servers: {a: {get_resource: web}}, config: "echo hi", ssh: {via: floating}}
"""


def test_stack_defaults_fill_in_and_the_resource_wins_key_by_key() -> None:
    st = run(MERGE)
    assert st.resources["own"].properties["ssh"] == {
        "user": "ubuntu", "port": 22, "timeout": 30, "via": "private",
        "key_pair": GetResource(("key",))}  # a null is "not given": the default stands
    assert st.resources["bare"].properties["ssh"] == {
        "user": "ubuntu", "port": 2222, "timeout": 30, "via": "private"}
    assert st.resources["many"].properties["ssh"]["via"] == "floating"
    assert st.resources["many"].properties["ssh"]["port"] == 2222
    assert "ssh" not in st.resources["web"].properties  # not a deployment
    # hooks: the hook's own timeout is its SSH timeout, over the stack's
    assert st.resources["web"].lifecycle["pre_delete"]["ssh"] == {
        "user": "ubuntu", "port": 2222, "via": "public"}
    assert st.resources["web"].lifecycle["pre_replace"]["ssh"] == {
        "user": "ubuntu", "port": 2222, "timeout": 30, "via": "private"}
    # a parameter feeds the defaults
    assert run(MERGE, params={"login": "admin"}).resources["bare"].properties["ssh"][
        "user"] == "admin"


def test_without_stack_defaults_nothing_changes() -> None:
    text = MERGE.split("resources:\n", 1)[1]
    st = run("resources:\n" + text)
    assert "ssh" not in st.resources["bare"].properties
    assert st.resources["own"].properties["ssh"] == {"key_pair": GetResource(("key",)),
                                                     "port": 22, "user": None}
    assert "ssh" not in st.resources["web"].lifecycle["pre_replace"]


def test_with_ssh_defaults_is_pure_and_leaves_other_kinds_alone() -> None:
    loc = Loc("t.yaml", 1, 1)
    dep = DesiredResource("d", "Cloud::Software::Deployment", DEPLOYMENT,
                          {"config": "x", "ssh": {"user": "me"}}, frozenset(),
                          Placement("", ""), loc)
    srv = DesiredResource("w", "Cloud::Compute::Server", resources.SERVER.kind,
                          {"image": "i"}, frozenset(), Placement("", ""), loc,
                          lifecycle={"create_before_destroy": True})
    given = {"d": dep, "w": srv}
    out = with_ssh_defaults(given, {"user": "ops", "via": "public"})
    assert out["d"].properties == {"config": "x", "ssh": {"user": "me", "via": "public"}}
    assert out["w"] == srv
    assert dep.properties["ssh"] == {"user": "me"}  # the input is not modified
    assert with_ssh_defaults(given, {}) == given


NESTED = """\
heat_template_version: 2021-04-16
ssh: {user: inner, timeout: 5}
resources:
  setup:
    type: Cloud::Software::Deployment
    properties: {server: srv-1, config: "echo hi", ssh: {port: 2200}}
"""


def test_a_nested_template_overrides_its_parent_key_by_key() -> None:
    files = {"inner.yaml": NESTED}
    st = run("""\
ssh: {user: outer, timeout: 60, via: public}
resources:
  child: {type: inner.yaml}
  group:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def: {type: inner.yaml}
  stack:
    type: OS::Heat::Stack
    properties:
      template: {heat_template_version: 2021-04-16, resources: {
        d: {type: Cloud::Software::Deployment, properties: {server: srv-2, config: x}}}}
""", files)
    want = {"user": "inner", "timeout": 5, "via": "public", "port": 2200}
    assert st.resources["child.setup"].properties["ssh"] == want
    assert st.resources["group.1.setup"].properties["ssh"] == want
    # a nested template without its own ssh: gets the parent's
    assert st.resources["stack.d"].properties["ssh"] == {"user": "outer", "timeout": 60,
                                                         "via": "public"}
    # without the parent's: only the nested one's
    alone = run("resources:\n  child: {type: inner.yaml}\n", files)
    assert alone.resources["child.setup"].properties["ssh"] == {"user": "inner",
                                                                "timeout": 5, "port": 2200}


def test_plain_group_members_get_the_stack_defaults() -> None:
    st = run("""\
ssh: {user: ops}
resources:
  deploys:
    type: Cloud::Group
    properties:
      count: 2
      resource_def:
        type: Cloud::Software::Deployment
        properties: {server: "srv-%index%", config: x, ssh: {port: 2222}}
""")
    assert st.resources["deploys.0"].properties["ssh"] == {"user": "ops", "port": 2222}


def test_a_script_health_check_gets_the_stack_defaults_but_keeps_its_timeout() -> None:
    st = run("""\
ssh: {user: ops, via: public, timeout: 99}
resources:
  web:
    type: Cloud::Group
    update_policy:
      rolling_update:
        max_batch_size: 1
        health_check: {script: "true", timeout: 7, ssh: {port: 2222}}
    properties:
      count: 2
      resource_def:
        type: Cloud::Compute::Server
        properties: {image: ubuntu-22.04, flavor: tiny}
""")
    check = st.resources["web.1"].update_policy["rolling_update"]["health_check"]
    assert check == {"script": "true", "timeout": 7,
                     "ssh": {"user": "ops", "via": "public", "port": 2222}}


# ----------------------------------------------------------- refusals in resolve

def test_stack_defaults_cannot_refer_to_resources() -> None:
    (d,) = fail("""\
ssh:
  user: ubuntu
  key_pair: {get_resource: key}
resources:
  key: {type: Cloud::Compute::KeyPair}
""")
    assert (d.code, d.loc.line, d.loc.column) == ("ssh-reference", 4, 13)
    assert "ssh.key_pair refers to a resource" in d.message
    assert "s.key" in d.hint  # the key pair's name, to write instead


def test_nested_stack_defaults_cannot_refer_to_the_parents_resources() -> None:
    inner = HEAD + ("parameters:\n  key: {type: string}\nssh: {key_pair: {get_param: key}}\n"
                    "resources: {}\n")
    (d,) = fail("resources:\n  key: {type: Cloud::Compute::KeyPair}\n"
                "  child: {type: inner.yaml, properties: {key: {get_resource: key}}}\n",
                {"inner.yaml": inner})
    assert (d.code, d.loc.file, d.loc.line) == ("ssh-reference", "inner.yaml", 4)


BAD = """\
parameters:
  via: {type: string}
ssh:
  via: floting
  port: 0
resources:
  web:
    type: Cloud::Compute::Server
    properties: {image: ubuntu-22.04, flavor: small}
    lifecycle:
      pre_delete: {script: "x", ssh: {via: pub, timeout: -1}}
  setup:
    type: Cloud::Software::Deployment
    properties:
      server: {get_resource: web}
      config: x
      ssh: {via: 3, usr: x, port: "22", bastion: [a]}
  from_param:
    type: Cloud::Software::Deployment
    properties: {server: srv, config: x, ssh: {via: {get_param: via}}}
"""


def test_literal_bad_values_are_diagnostics_with_location_and_hint() -> None:
    diags = fail(BAD, mode="validate")
    assert at(diags) == [
        ("invalid-value", "t.yaml", 5, 8),
        ("invalid-value", "t.yaml", 6, 9),
        ("invalid-value", "t.yaml", 12, 44),
        ("invalid-value", "t.yaml", 12, 58),
        ("invalid-value", "t.yaml", 18, 18),
        ("unknown-key", "t.yaml", 18, 21),
        ("invalid-type", "t.yaml", 18, 50),
    ]
    by_line = {(d.loc.line, d.loc.column): d for d in diags}
    via = by_line[(5, 8)]
    assert via.message == "ssh.via: must be floating, public or private, not 'floting'"
    assert via.hint.startswith("did you mean 'floating'?")
    assert by_line[(12, 44)].message.startswith("resource 'web': pre_delete.ssh.via:")
    assert "did you mean 'public'?" in by_line[(12, 44)].hint
    assert by_line[(18, 18)].message == ("resource 'setup': ssh.via: must be floating, "
                                         "public or private, not an integer")
    assert by_line[(18, 21)].message == "resource 'setup': ssh: unknown SSH setting 'usr'"
    assert "did you mean 'user'?" in by_line[(18, 21)].hint
    assert all(d.hint for d in diags)


def test_via_from_a_parameter_is_checked_once_it_has_a_value() -> None:
    text = BAD.split("resources:\n", 1)[1].split("  from_param:\n", 1)[1]
    template = ("parameters:\n  via: {type: string}\nresources:\n  from_param:\n" + text)
    assert "from_param" in run(template, mode="validate").resources  # no value: not known
    assert run(template, params={"via": "public"}).resources["from_param"].properties[
        "ssh"] == {"via": "public"}
    (d,) = fail(template, params={"via": "pubic"})
    assert (d.code, d.loc.line) == ("invalid-value", 7)
    assert "'pubic'" in d.message and "did you mean 'public'?" in d.hint


# ------------------------------------------------------------ choosing the address

def server(attrs: dict[str, Any], sid: str = "srv-1") -> LiveResource:
    return LiveResource("web", resources.SERVER.kind, sid, Placement("os", "r"),
                        properties={"key_name": "s.key"}, attributes=attrs)


def fip(ip: str, **kw: Any) -> LiveResource:
    props = {"server": kw.pop("server")} if "server" in kw else {}
    return LiveResource("ip", resources.FLOATING_IP.kind, f"fip-{ip}", Placement("os", "r"),
                        properties=props, attributes={"floating_ip_address": ip, **kw})


FULL = [server({"private_ip": "10.0.0.5", "first_address": "10.0.0.5",
                "public_ip": "198.51.100.7", "networks": {"n1": ["10.0.0.5", "10.1.0.9"]}}),
        fip("203.0.113.9", fixed_ip_address="10.0.0.5")]


def adapter(records: list[LiveResource], tmp_path: Path) -> deploy.DeployAdapter:
    local = Target(resources.LOCAL_TARGET, "local")
    return deploy.DeployAdapter(LocalAdapter(local, b"k", lambda: []), key=b"k", stack="s",
                                records=lambda: list(records), project_dir=tmp_path)


@pytest.mark.parametrize(("via", "want"), [
    (None, "203.0.113.9"), ("floating", "203.0.113.9"), ("public", "198.51.100.7"),
    ("private", "10.0.0.5")])
def test_via_picks_exactly_that_kind(via: str | None, want: str, tmp_path: Path) -> None:
    assert adapter(FULL, tmp_path).resolve_address("srv-1", via) == want


def test_server_addresses_sorts_a_servers_addresses_by_kind() -> None:
    found = addresses.server_addresses([*FULL, fip("203.0.113.10", server="srv-1"),
                                     fip("203.0.113.11", server="other")], "srv-1")
    assert found.floating == ("203.0.113.9", "203.0.113.10")
    assert found.public == ("198.51.100.7",)
    assert found.private == ("10.0.0.5", "10.1.0.9")


def test_without_via_the_old_order_stands(tmp_path: Path) -> None:
    no_fip = [server({"private_ip": "10.0.0.5", "first_address": "10.0.0.5",
                      "public_ip": "198.51.100.7"})]
    assert adapter(no_fip, tmp_path).resolve_address("srv-1") == "198.51.100.7"
    private_only = [server({"private_ip": "10.0.0.5", "first_address": "10.0.0.5"})]
    assert adapter(private_only, tmp_path).resolve_address("srv-1") == "10.0.0.5"
    with pytest.raises(CloudError, match="no address known for server srv-1"):
        adapter([server({})], tmp_path).resolve_address("srv-1")


def test_via_fails_naming_the_server_and_what_it_has(tmp_path: Path) -> None:
    private_only = [server({"private_ip": "10.0.0.5", "first_address": "10.0.0.5"})]
    with pytest.raises(CloudError) as exc:
        adapter(private_only, tmp_path).resolve_address("srv-1", "floating")
    assert exc.value.message.startswith(
        "ssh.via is floating, but server srv-1 has no floating address (it has private "
        "10.0.0.5): use ssh.via: private, or give the deployment an 'address'")
    with pytest.raises(CloudError) as exc:
        adapter(FULL[:1], tmp_path).resolve_address("srv-1", "floating")
    assert "(it has public 198.51.100.7; private 10.0.0.5, 10.1.0.9)" in exc.value.message
    assert "use ssh.via: public or private" in exc.value.message
    with pytest.raises(CloudError) as exc:
        adapter([], tmp_path).resolve_address("srv-9", "public")
    assert exc.value.message == (
        "ssh.via is public, but server srv-9 has no public address (the stack's state has "
        "no record of it): give the deployment an 'address'")
    with pytest.raises(CloudError) as exc:
        adapter(FULL, tmp_path).resolve_address("srv-1", "pubic")
    assert exc.value.message == "ssh.via must be floating, public or private, not 'pubic'"


def test_a_hook_connects_by_its_via(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_hook -> _run_one -> _endpoint: the hook's ssh.via chooses the address."""
    ad = adapter(FULL, tmp_path)
    seen: list[str] = []

    def endpoint(server_id: str, host: Any, settings: Any) -> Any:
        seen.append(ad.resolve_address(server_id, settings.get("via")))
        raise CloudError("stop here")

    monkeypatch.setattr(ad, "_endpoint", endpoint)
    for via in ("private", "public"):
        with pytest.raises(CloudError, match="stop here"):
            ad.run_hook(FULL[0], {"script": "true", "ssh": {"via": via}}, "pre_delete")
    assert seen == ["10.0.0.5", "198.51.100.7"]


# --------------------------------------------- a change of connection settings only

def deployment(tmp_path: Path, changed: frozenset[str],
               monkeypatch: pytest.MonkeyPatch) -> tuple[LiveResource, list[str]]:
    prior = {"deploy_stdout": "old\n", "deploy_status_code": 0, "host": "10.0.0.5:22",
             "host_key": "SHA256:x", "server": "srv-1"}
    record = LiveResource("setup", DEPLOYMENT, "s.setup", Placement("local", "local"),
                          properties={"server": "srv-1", "config": "echo", "ssh": {}},
                          attributes=prior, spec_hash="old")
    ad = adapter([*FULL, record], tmp_path)
    runs: list[str] = []

    def run_one(action: str, *args: Any) -> dict[str, Any]:
        runs.append(action)
        return {"deploy_stdout": "new\n"}

    monkeypatch.setattr(ad, "_run_one", run_one)
    live = ad.update(record, {"server": "srv-1", "config": "echo", "actions": ["UPDATE"],
                              "ssh": {"via": "private"}}, changed, stack="s",
                     spec_hash="new", timeout=1)
    return live, runs


@pytest.mark.parametrize("changed", [{"ssh"}, {"address"}, {"ssh", "address"}])
def test_only_connection_settings_changed_nothing_runs(
        changed: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live, runs = deployment(tmp_path, frozenset(changed), monkeypatch)
    assert runs == []
    assert live.spec_hash == "new" and live.attributes["deploy_stdout"] == "old\n"
    assert live.attributes["host_key"] == "SHA256:x"


@pytest.mark.parametrize("changed", [{"ssh", "inputs"}, {"config"}, set()])
def test_any_other_change_runs_the_script(
        changed: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live, runs = deployment(tmp_path, frozenset(changed), monkeypatch)
    assert runs == ["UPDATE"] and live.attributes["deploy_stdout"] == "new\n"


def test_connection_only_names_deployments_and_groups() -> None:
    assert resources.connection_only(DEPLOYMENT, ["ssh", "address"])
    assert resources.connection_only(software_kinds.DEPLOYMENT_GROUP.kind, ["addresses"])
    assert not resources.connection_only(DEPLOYMENT, [])
    assert not resources.connection_only(DEPLOYMENT, ["ssh", "config"])
    assert not resources.connection_only(resources.SERVER.kind, ["ssh"])


def test_plan_says_the_script_does_not_run() -> None:
    res = DesiredResource("setup", DEPLOYMENT, DEPLOYMENT, {}, frozenset(),
                          Placement("local", "local"), Loc("t.yaml"))
    live = LiveResource("setup", DEPLOYMENT, "s.setup", Placement("local", "local"),
                        spec_hash="old")
    last = {"config": "echo", "ssh": {"user": "a"}}
    action, diff, why = decide(res, {"config": "echo", "ssh": {"user": "b"}}, live, last)
    assert (action, [d.name for d in diff]) == (Action.UPDATE, ["ssh"])
    assert why == "only how to connect changed: recorded, the script does not run"
    action, diff, why = decide(res, {"config": "echo 2", "ssh": {"user": "b"}}, live, last)
    assert (action, why) == (Action.UPDATE, "updated in place")


STACK = """\
ssh: {user: USER}
resources:
  setup:
    type: Cloud::Software::Deployment
    properties: {server: srv-1, config: CONFIG}
"""


def test_apply_records_a_new_stack_default_without_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the template to the state: changing the stack's ssh: is an update that
    records the new spec, keeps the deployment's attributes and shows no output."""

    def resolved(user: str, config: str = "echo hi") -> ResolvedStack:
        return run(STACK.replace("USER", user).replace("CONFIG", config))

    catalogs = {resources.LOCAL_TARGET: Catalog(name="local", type="local")}

    def spec(st: ResolvedStack) -> dict[str, Any]:
        return desired_spec(st.resources["setup"], RefContext(st, lambda name: None),
                            catalogs["local"], ())

    old_spec = spec(resolved("a"))
    live = LiveResource("setup", DEPLOYMENT, "s.setup", Placement("local", "local"),
                        attributes={"deploy_stdout": "old output\n", "server": "srv-1"},
                        spec_hash=spec_hash(old_spec))

    def apply(st: ResolvedStack) -> tuple[list[str], list[Event], StateStore]:
        store = StateStore.open(f"sqlite:///{tmp_path}/{len(list(tmp_path.iterdir()))}.db")
        store.put_resource("s", ResourceRecord.from_live(live, old_spec))

        def records() -> list[LiveResource]:
            return [LiveResource(r.address, r.kind, r.physical_id,
                                 Placement(r.target, r.region), properties=dict(r.spec),
                                 attributes=dict(r.attributes), spec_hash=r.spec_hash)
                    for r in store.resources("s").values()]

        ad = adapter([], tmp_path)
        monkeypatch.setattr(ad, "_records", records)
        runs: list[str] = []

        def run_one(action: str, *args: Any) -> dict[str, Any]:
            runs.append(action)
            return {"deploy_stdout": "new output\n"}

        monkeypatch.setattr(ad, "_run_one", run_one)
        plan = make_plan(st, Discovery({"setup": (live,)}, 0, 0.0), {"setup": old_spec},
                         catalogs, state_serial=1)
        (change,) = plan.changes
        assert change.action is Action.UPDATE
        events: list[Event] = []
        with store.lock("s", "test"):
            run_id = store.begin_run("s", "apply", "test")
            result = Executor(plan, st, {"local": ad}, store, catalogs,
                              keys_dir=tmp_path / "keys", emit=events.append,
                              local=ad).run(run_id)
        assert result.ok, [e.message for e in events]
        return runs, events, store

    runs, events, store = apply(resolved("b"))
    assert runs == []
    record = store.resources("s")["setup"]
    assert record.spec["ssh"] == {"user": "b"}
    assert record.attributes["deploy_stdout"] == "old output\n"
    assert not any("output" in e.message for e in events if e.event == "progress")
    # the script changes too: it runs, and its output shows
    runs, events, store = apply(resolved("b", "echo bye"))
    assert runs == ["UPDATE"]
    assert any("new output" in e.message for e in events if e.event == "progress")
