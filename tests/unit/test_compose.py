"""Groups and nested stacks, flattened into one stack (pure: files come from a dict)."""

from __future__ import annotations

from typing import Any

import pytest

from cloudtmpl.compose import Select
from cloudtmpl.config import SANDBOX_TARGETS
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError
from cloudtmpl.functions import GetAttr, GetResource
from cloudtmpl.loader import load_text
from cloudtmpl.resolve import ResolvedStack, ResolveOptions, resolve

WEB = """\
heat_template_version: 2021-04-16
parameters:
  flavor: {type: string, default: small}
  sg: {type: string}
  tag: {type: string, default: none}
resources:
  server:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: {get_param: flavor}
      security_groups: [{get_param: sg}]
      metadata: {tag: {get_param: tag}}
  ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: server}}
outputs:
  address: {value: {get_attr: [ip, floating_ip_address]}}
  private: {value: {get_attr: [server, first_address]}}
"""


def run(text: str, files: dict[str, str] | None = None, env: str | None = None,
        **opts: Any) -> ResolvedStack:
    files = {"web.yaml": WEB, **(files or {})}

    def read(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory")
        return files[path]

    envs = (load_text(env, "env.yaml"),) if env else ()
    options = ResolveOptions(stack="s", target=opts.pop("target", "sandbox-aws"),
                             targets=SANDBOX_TARGETS, read_file=read, environments=envs,
                             **opts)
    return resolve(load_text("heat_template_version: 2021-04-16\n" + text, "top.yaml"),
                   options)


def fail(text: str, files: dict[str, str] | None = None) -> list[Diagnostic]:
    with pytest.raises(DiagnosticError) as exc:
        run(text, files)
    return list(exc.value.diagnostics)


GROUP = """\
parameters:
  n: {type: number, default: 3}
resources:
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: n}
      resource_def:
        type: Cloud::Compute::Server
        properties: {image: ubuntu-22.04, flavor: tiny, metadata: {name: "worker-%index%"}}
  lb:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: tiny
      user_data: {list_join: [",", {get_attr: [workers, first_address]}]}
outputs:
  ids: {value: {get_attr: [workers, refs]}}
  by_index: {value: {get_attr: [workers, refs_map]}}
  second: {value: {get_attr: [workers, resource.1, first_address]}}
"""


def test_group_members_index_substitution_and_attribute_forms() -> None:
    stack = run(GROUP)
    assert list(stack.resources) == ["workers.0", "workers.1", "workers.2", "lb"]
    assert stack.resources["workers.2"].properties["metadata"] == {"name": "worker-2"}
    assert stack.resources["workers.1"].kind == "Cloud::Compute::Server"
    assert stack.resources["lb"].depends_on == {"workers.0", "workers.1", "workers.2"}
    join = stack.resources["lb"].properties["user_data"]
    assert [a for a in join.args[1]] == [GetAttr((f"workers.{i}", "first_address"))
                                         for i in range(3)]
    assert stack.outputs["ids"].value == [GetResource((f"workers.{i}",)) for i in range(3)]
    assert stack.outputs["by_index"].value == {str(i): GetResource((f"workers.{i}",))
                                               for i in range(3)}
    assert stack.outputs["second"].value == GetAttr(("workers.1", "first_address"))


def test_scaling_adds_and_removes_the_highest_members() -> None:
    assert [a for a in run(GROUP, params={"n": "5"}).resources if a.startswith("workers")] == [
        f"workers.{i}" for i in range(5)]
    assert [a for a in run(GROUP, params={"n": "2"}).resources if a.startswith("workers")] == [
        "workers.0", "workers.1"]


def test_removal_policies_and_index_var() -> None:
    stack = run("""\
resources:
  g:
    type: Cloud::Group
    properties:
      count: 3
      index_var: "@@"
      removal_policies: [{resource_list: ["1"]}]
      resource_def:
        type: Cloud::Block::Volume
        properties: {size: 1, metadata: {slot: "@@", untouched: "%index%"}}
""")
    assert list(stack.resources) == ["g.0", "g.2", "g.3"]
    assert stack.resources["g.3"].properties["metadata"] == {"slot": "3",
                                                            "untouched": "%index%"}


def test_template_resource_parameters_outputs_and_references() -> None:
    stack = run("""\
resources:
  sg: {type: Cloud::Network::SecurityGroup}
  web:
    type: web.yaml
    properties: {sg: {get_resource: sg}, flavor: medium}
  dns_note:
    type: Cloud::Compute::Server
    properties:
      image: ubuntu-22.04
      flavor: tiny
      user_data: {get_attr: [web, address]}
      metadata: {srv: {get_attr: [web, resource.server, first_address]}}
outputs:
  address: {value: {get_attr: [web, address]}}
""")
    assert list(stack.resources) == ["sg", "web.server", "web.ip", "dns_note"]
    server = stack.resources["web.server"]
    assert server.properties["flavor"] == "medium"
    assert server.properties["security_groups"] == [GetResource(("sg",))]
    assert server.properties["metadata"] == {"tag": "none"}
    assert server.depends_on == {"sg"}
    assert stack.resources["web.ip"].properties["server"] == GetResource(("web.server",))
    assert stack.resources["web.ip"].depends_on == {"web.server"}
    note = stack.resources["dns_note"].properties
    assert repr(note["user_data"]) == "{get_attr: [web.ip, floating_ip_address]}"
    assert repr(note["metadata"]["srv"]) == "{get_attr: [web.server, first_address]}"
    assert repr(stack.outputs["address"].value) == "{get_attr: [web.ip, floating_ip_address]}"
    assert server.loc.file == "web.yaml"  # diagnostics point into the nested file


def test_registry_maps_a_type_to_a_template_and_groups_of_nested_stacks() -> None:
    stack = run("""\
resources:
  sg: {type: Cloud::Network::SecurityGroup}
  tier:
    type: Cloud::Group
    properties:
      count: 2
      resource_def:
        type: My::Web
        properties: {sg: {get_resource: sg}, tag: "web-%index%"}
outputs:
  addresses: {value: {get_attr: [tier, address]}}
""", env="resource_registry:\n  My::Web: web.yaml\n")
    assert list(stack.resources) == ["sg", "tier.0.server", "tier.0.ip", "tier.1.server",
                                     "tier.1.ip"]
    assert stack.resources["tier.1.server"].properties["metadata"] == {"tag": "web-1"}
    assert [repr(v) for v in stack.outputs["addresses"].value] == [
        "{get_attr: [tier.0.ip, floating_ip_address]}",
        "{get_attr: [tier.1.ip, floating_ip_address]}"]


def test_nested_output_with_a_path_and_unknown_parameter() -> None:
    files = {"map.yaml": "heat_template_version: 2021-04-16\nresources:\n"
             "  v: {type: Cloud::Block::Volume, properties: {size: 1}}\noutputs:\n"
             "  info: {value: {id: {get_resource: v}}}\n"}
    stack = run("resources:\n  m: {type: map.yaml}\noutputs:\n"
                "  vid: {value: {get_attr: [m, info, id]}}\n", files)
    value = stack.outputs["vid"].value
    assert isinstance(value, Select) and value.args[0] == {"id": GetResource(("m.v",))}
    (d,) = fail("resources:\n  m: {type: map.yaml, properties: {nope: 1}}\n", files)
    assert (d.code, d.loc.file, d.loc.line) == ("unknown-property", "top.yaml", 3)
    assert "map.yaml has no parameter 'nope'" in d.message


def test_nested_diagnostics_point_into_the_nested_file() -> None:
    bad = "heat_template_version: 2021-04-16\nresources:\n  x: {type: Cloud::Compute::Sever}\n"
    (d,) = fail("resources:\n  b: {type: bad.yaml}\n", {"bad.yaml": bad})
    assert (d.code, d.loc.file, d.loc.line) == ("unknown-resource-type", "bad.yaml", 3)


def test_heat_stack_with_region_context_places_the_nested_resources() -> None:
    inner = {"heat_template_version": "2021-04-16",
             "parameters": {"size": {"type": "number"}},
             "resources": {"v": {"type": "OS::Cinder::Volume",
                                 "properties": {"size": {"get_param": "size"}}}}}
    import json

    stack = run(f"""\
resources:
  de:
    type: OS::Heat::Stack
    properties:
      template: {json.dumps(inner)}
      parameters: {{size: 5}}
      context: {{region_name: de-fra-1}}
  nl:
    type: OS::Heat::Stack
    properties:
      template: {json.dumps(inner)}
      parameters: {{size: 7}}
      context: {{region_name: nl-ams-1}}
""", target="sandbox-openstack")
    assert stack.resources["de.v"].placement.region == "de-fra-1"
    assert stack.resources["nl.v"].placement.region == "nl-ams-1"
    assert stack.resources["nl.v"].properties["size"] == 7


def test_spread_places_members_round_robin() -> None:
    stack = run("""\
resources:
  media:
    type: Cloud::Group
    placement: {spread: [sandbox-aws/eu-central-1, sandbox-openstack/de-fra-1]}
    properties:
      count: 3
      resource_def: {type: Cloud::Block::Volume, properties: {size: 1}}
""")
    where = {a: (r.placement.target, r.placement.region) for a, r in stack.resources.items()}
    assert where == {"media.0": ("sandbox-aws", "eu-central-1"),
                     "media.1": ("sandbox-openstack", "de-fra-1"),
                     "media.2": ("sandbox-aws", "eu-central-1")}
    (d,) = fail("resources:\n  g:\n    type: Cloud::Group\n    placement: {spread: [a/b]}\n"
                "    properties: {count: 1, resource_def: {type: Cloud::Block::Volume, "
                "properties: {size: 1}}}\n")
    assert d.code == "spread-too-small"


def test_nested_residency_may_narrow_but_not_widen() -> None:
    nl_only = ("heat_template_version: 2021-04-16\nplacement: {residency: {countries: [NL]}}\n"
               "resources:\n  v: {type: Cloud::Block::Volume, properties: {size: 1}}\n")
    top = ("placement: {residency: {jurisdictions: [EU]}}\nresources:\n"
           "  n: {type: nl.yaml}\n")
    stack = run(top, {"nl.yaml": nl_only}, target="sandbox-openstack")
    assert stack.resources["n.v"].placement.region == "nl-ams-1"  # narrowed to NL
    wide = nl_only.replace("countries: [NL]", "jurisdictions: [EU, US]")
    diags = fail(top, {"nl.yaml": wide})
    assert "residency-widened" in [d.code for d in diags]


def test_group_count_must_be_known() -> None:
    (d,) = fail("resources:\n  g:\n    type: Cloud::Group\n    properties:\n"
                "      count: many\n      resource_def: {type: Cloud::Block::Volume}\n")
    assert d.code == "group-count" and d.loc.line == 6
