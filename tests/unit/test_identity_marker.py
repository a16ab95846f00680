"""The marker that says a Keystone object is a stack's (providers/openstack/identity.py)."""

from __future__ import annotations

from cloudtmpl.providers.openstack.identity import describe, split


def test_the_marker_follows_the_templates_text_and_reads_back() -> None:
    text = describe("the team's project", "de-fra-1", "ks.team", "abc123")
    assert text == "the team's project\ncloudtmpl:owner=de-fra-1/ks.team spec=abc123"
    assert split(text) == ("the team's project", ("de-fra-1", "ks.team", "abc123"))
    assert split(describe("", "nl-ams-1", "s.r", "x")) == ("", ("nl-ams-1", "s.r", "x"))


def test_an_object_without_the_marker_is_nobodys() -> None:
    assert split("just a description") == ("just a description", None)
    assert split(None) == ("", None)
    # a marker not on the last line is text, not ownership
    assert split("cloudtmpl:owner=de-fra-1/ks.team spec=a\nmore")[1] is None
