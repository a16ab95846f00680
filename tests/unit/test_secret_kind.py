"""``Cloud::Secret``'s schema: what a template may write (diagnostics before any cloud is
asked), the payload marked sensitive whatever it is written with, and its seal in what
is recorded."""

from __future__ import annotations

from cloudtmpl import resources
from cloudtmpl.desired import sensitive_attribute
from cloudtmpl.model import seal
from cloudtmpl.sensitive import is_marked
from tests.unit.test_resolve import fail, run, where


def test_a_literal_payload_is_marked_and_recorded_as_its_seal_only() -> None:
    stack = run("resources:\n  s: {type: Cloud::Secret, properties: {payload: hunter2-pw}}\n")
    props = resources.canonical("Cloud::Secret", stack.resources["s"].properties)
    assert is_marked(props["payload"]) and props["secret_type"] == "opaque"
    sealed = seal(props, key=b"k")
    assert sealed["payload"].startswith("(sensitive) hmac:") and "hunter2" not in str(sealed)
    other = seal(resources.canonical("Cloud::Secret", {"payload": "hunter3-pw"}), key=b"k")
    assert other["payload"] != sealed["payload"]  # a new payload: a new seal


def test_heats_names_map_onto_the_kind() -> None:
    stack = run("resources:\n  s:\n    type: OS::Barbican::Secret\n"
                "    properties: {name: n, payload: x, payload_content_type: text/plain}\n"
                "outputs:\n  o: {value: {get_attr: [s, decrypted_payload]}}\n")
    assert stack.resources["s"].kind == "Cloud::Secret"
    assert "name" not in stack.resources["s"].properties
    assert sensitive_attribute("Cloud::Secret", "value")
    assert not sensitive_attribute("Cloud::Secret", "href")


def test_generated_keys_are_symmetric() -> None:
    props = resources.canonical("Cloud::Secret", {"generate": {"type": "symmetric"}})
    assert props["secret_type"] == "symmetric"


def test_what_the_clouds_refuse_is_a_diagnostic_with_its_place() -> None:
    diags = fail("""\
resources:
  both: {type: Cloud::Secret, properties: {payload: x, generate: {type: password}}}
  none: {type: Cloud::Secret, properties: {secret_type: opaque}}
  kind: {type: Cloud::Secret, properties: {generate: {type: rsa}}}
  short: {type: Cloud::Secret, properties: {generate: {type: password, length: 4}}}
  bits: {type: Cloud::Secret, properties: {generate: {type: symmetric, bit_length: 100}}}
  bin:
    type: Cloud::Secret
    properties: {payload: eA==, payload_content_type: application/octet-stream}
  enc: {type: Cloud::Secret, properties: {payload: x, payload_content_encoding: base64}}
  ctype: {type: Cloud::Secret, properties: {payload: x, payload_content_type: text/html}}
  stype: {type: Cloud::Secret, properties: {payload: x, secret_type: opaq}}
""")
    found = where(diags)
    assert [code for code, *_ in found].count("secret-properties") == 7, found
    assert found[-2:] == [("property-value", 12, 79), ("property-value", 13, 70)], found
    by_line = {d.loc.line: d for d in diags}  # the template's first line is line 2
    assert "either 'payload' or 'generate'" in by_line[3].message
    assert "needs 'payload' or 'generate'" in by_line[4].message
    assert "bit_length must be one of 128, 192, 256" in by_line[7].message
    assert "did you mean 'opaque'" in (by_line[13].hint or "")
    assert all(d.hint for d in diags)
