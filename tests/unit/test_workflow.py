"""Pure checks the workflow runs before any cloud is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudtmpl import capabilities, planfile, session
from cloudtmpl.config import SANDBOX_TARGETS, ProjectConfig
from cloudtmpl.diagnostics import DiagnosticError
from cloudtmpl.inputs import Inputs, parse_params
from cloudtmpl.loader import load_text
from cloudtmpl.model import Target
from cloudtmpl.resolve import ResolveOptions, resolve

TEMPLATE = """\
heat_template_version: 2021-04-16
resources:
  net: {type: OS::Neutron::Net}
  vol: {type: Cloud::Block::Volume, properties: {size: 1}}
"""


def test_a_kind_the_target_cannot_provide_is_a_diagnostic(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    project = ProjectConfig(directory=Path("."), file=None, targets=SANDBOX_TARGETS)
    stack = resolve(load_text(TEMPLATE, "t.yaml"),
                    ResolveOptions(stack="t", target="sandbox-openstack/nl-ams-1",
                                   targets=SANDBOX_TARGETS))
    session.check_targets(stack, project)  # both kinds exist on OpenStack
    monkeypatch.setitem(capabilities.CLOUDS, "openstack",
                        capabilities.Capabilities(frozenset({"Cloud::Block::Volume"})))
    with pytest.raises(DiagnosticError) as exc:
        session.check_targets(stack, project)
    (d,) = exc.value.diagnostics
    assert d.code == "unsupported-kind"
    assert (d.loc.file, d.loc.line) == ("t.yaml", 3)
    assert "'net' (OS::Neutron::Net)" in d.message
    assert "sandbox-openstack" in d.message and "nl-ams-1" in d.message
    assert "Cloud::Block::Volume" in d.hint


@pytest.mark.parametrize(("target", "resource", "words"), [
    ("sandbox-openstack", "{type: Cloud::Network::NatGateway, properties: {subnet: s}}",
     "enable_snat"),
    ("sandbox-aws/eu-central-1", "{type: OS::Neutron::RouterGateway, properties: "
     "{router_id: r, network_id: n}}", "external_gateway_info"),
    ("sandbox-aws/eu-central-1", "{type: OS::Octavia::Pool, properties: {listener: l, "
     "protocol: HTTP, lb_algorithm: ROUND_ROBIN}}", "Cloud::LB::LoadBalancer"),
])
def test_a_kind_the_cloud_does_otherwise_names_its_way_in_the_hint(
        target: str, resource: str, words: str) -> None:
    text = f"heat_template_version: 2021-04-16\nresources:\n  x: {resource}\n"
    project = ProjectConfig(directory=Path("."), file=None, targets=SANDBOX_TARGETS)
    stack = resolve(load_text(text, "t.yaml"),
                    ResolveOptions(stack="t", target=target, targets=SANDBOX_TARGETS))
    with pytest.raises(DiagnosticError) as exc:
        session.check_targets(stack, project)
    (d,) = exc.value.diagnostics
    assert d.code == "unsupported-kind" and words in d.hint


def test_snapshot_on_a_target_that_cannot_snapshot_is_a_diagnostic() -> None:
    lab = Target("lab", "libcloud", "global", {"driver": "linode", "snapshots": False,
                                               "kinds": tuple(capabilities.LIBCLOUD_KINDS)})
    targets = {**SANDBOX_TARGETS, "lab": lab}
    text = TEMPLATE.replace("vol: {type: Cloud::Block::Volume,",
                            "vol: {type: Cloud::Block::Volume, deletion_policy: Snapshot,")
    project = ProjectConfig(directory=Path("."), file=None, targets=targets)
    for where in ("sandbox-openstack/nl-ams-1", "sandbox-aws/eu-central-1"):
        session.check_targets(resolve(load_text(text, "t.yaml"), ResolveOptions(
            stack="t", target=where, targets=targets)), project)
    stack = resolve(load_text(text.replace("net: {type: OS::Neutron::Net}\n", ""), "t.yaml"),
                    ResolveOptions(stack="t", target="lab", targets=targets))
    with pytest.raises(DiagnosticError) as exc:
        session.check_targets(stack, project)
    (d,) = exc.value.diagnostics
    assert d.code == "snapshot-unsupported" and (d.loc.file, d.loc.line) == ("t.yaml", 3)
    assert "'vol' (Cloud::Block::Volume) has deletion_policy Snapshot" in d.message
    assert "target 'lab'" in d.message and "Retain or Delete" in d.hint


def test_parse_params_reads_files_and_rejects_bad_pairs(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert parse_params(["a=1", f"pw=@{secret}", "b=x=y"]) == {
        "a": "1", "pw": "s3cret", "b": "x=y"}
    with pytest.raises(DiagnosticError) as exc:
        parse_params(["novalue", "=x", "f=@/nonexistent/file"])
    assert [d.code for d in exc.value.diagnostics] == [
        "bad-parameter-arg", "bad-parameter-arg", "file-not-found"]


def test_snapshot_cuts_hidden_values_out_of_environments() -> None:
    inputs = Inputs(template="t.yaml", environments=("env.yaml",))
    sources = {"t.yaml": "heat_template_version: 2021-04-16\n",
               "env.yaml": "parameters:\n  pw: hunter2\n  size: 3\n"
                           "parameter_defaults:\n  pw: other\n"}
    snap = planfile.snapshot(sources, inputs, frozenset({"pw"}))
    assert snap["t.yaml"] == sources["t.yaml"]
    assert "hunter2" not in snap["env.yaml"] and "other" not in snap["env.yaml"]
    assert "size: 3" in snap["env.yaml"]
    assert planfile.snapshot(sources, inputs, frozenset()) == sources
