"""The list of Heat's documented types (cloudtmpl/heat_types.py) against the registry."""

from __future__ import annotations

from cloudtmpl import heat_types, resources


def test_every_heat_alias_cloudtmpl_has_is_a_documented_heat_type() -> None:
    heat_names = [a for a in resources.ALIASES if a.startswith(("OS::", "AWS::"))]
    assert heat_names and sorted(set(heat_names) - heat_types.DOCUMENTED) == []


def test_a_documented_type_cloudtmpl_lacks_is_unsupported_naming_the_targets() -> None:
    assert resources.lookup("OS::Sahara::Cluster") is None
    message, hint = heat_types.unsupported("OS::Sahara::Cluster", ["b", "a", "a"]) or ("", "")
    assert message == "is a Heat type (Sahara) that cloudtmpl cannot create on target 'a', 'b'"
    assert "parameter" in hint
    assert heat_types.unsupported("OS::Neutron::Trunk", [])[0].endswith("on any target")  # type: ignore[index]
    assert heat_types.unsupported("OS::Nova::Sever", ["a"]) is None  # not Heat's
    assert len(heat_types.DOCUMENTED) == 200
