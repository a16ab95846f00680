"""Sensitivity as a property of values: marks, their spread through functions, seals."""

from __future__ import annotations

import hashlib
import threading

from cloudtmpl import hidden_defaults
from cloudtmpl.functions import evaluate
from cloudtmpl.model import seal, sealed_text, spec_hash
from cloudtmpl.sensitive import carry, has_marks, is_marked, mark, unmark
from cloudtmpl_sandbox.httplog import request_line
from tests.unit.fnctx import Ctx, ok

SECRET = {"db": mark({"user": "app", "password": "pw-leaf-1"}),
          "tokens": mark(["t-zero", "t-one"]), "creds": mark("app:piece-2"),
          "plain": "visible"}


def test_a_leaf_an_item_and_a_piece_of_a_hidden_value_are_sensitive() -> None:
    ctx = Ctx(SECRET)
    leaf = evaluate(ok("v: {get_param: [db, password]}\n"), ctx)
    item = evaluate(ok("v: {get_param: [tokens, 1]}\n"), ctx)
    piece = evaluate(ok("v: {str_split: [':', {get_param: creds}, 1]}\n"), ctx)
    joined = evaluate(ok("v: {list_join: ['-', [{get_param: plain}, {get_param: creds}]]}\n"),
                      ctx)
    assert (leaf, item, piece) == ("pw-leaf-1", "t-one", "piece-2")  # the cloud's values
    assert all(is_marked(v) for v in (leaf, item, piece, joined))
    assert not is_marked(evaluate(ok("v: {get_param: plain}\n"), ctx))
    assert not has_marks(evaluate(ok("v: {list_join: ['-', [a, {get_param: plain}]]}\n"), ctx))
    # a key taken from a secret is a secret too
    assert is_marked(evaluate(ok("v: {get_param: [db, {get_param: [tokens, 0]}]}\n"),
                              Ctx({**SECRET, "db": {"t-zero": "x"}})))


def test_seal_replaces_exactly_the_marked_values() -> None:
    key = b"k" * 32
    value = {"leaf": mark("pw-leaf-1"), "plain": "visible", "n": mark(482913),
             "list": ["a", mark("t-one")]}
    sealed = seal(value, (), key)
    assert sealed["plain"] == "visible" and sealed["list"][0] == "a"
    assert sealed["leaf"] == sealed_text("pw-leaf-1", key)
    assert "pw-leaf-1" not in str(sealed) and "482913" not in str(sealed)
    assert str(sealed["n"]).startswith("(sensitive) hmac:")


def test_the_seal_is_keyed_and_still_changes_with_the_secret() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert sealed_text("482913", a) != sealed_text("482914", a)  # a change is seen
    assert sealed_text("482913", a) != sealed_text("482913", b)  # ... but needs the key
    unkeyed = hashlib.sha256(b"482913").hexdigest()[:12]
    assert unkeyed not in sealed_text("482913", a)
    # brute force without the key finds nothing: no candidate matches
    target = sealed_text("482913", a)
    assert all(sealed_text(str(n), b) != target for n in range(482900, 482930))


def test_marks_do_not_change_spec_hashes_and_survive_conversions() -> None:
    plain = {"name": "web", "size": 3}
    assert spec_hash(plain) == spec_hash(seal(plain, (), b"k"))
    assert unmark(mark({"a": [1, "x"]})) == {"a": [1, "x"]}
    assert type(unmark(mark("x"))) is str
    converted = carry({"p": mark("5"), "q": "x"}, {"p": 5, "q": "x"})
    assert is_marked(converted["p"]) and not is_marked(converted["q"])


def test_marks_are_counted_per_thread() -> None:
    results: dict[str, bool] = {}

    def work(name: str, params: dict[str, object]) -> None:
        for _ in range(200):
            v = evaluate(ok("v: {list_join: ['-', [{get_param: a}, b]]}\n"), Ctx(params))
        results[name] = is_marked(v)

    threads = [threading.Thread(target=work, args=("secret", {"a": mark("s3cret")})),
               threading.Thread(target=work, args=("plain", {"a": "plain"}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"secret": True, "plain": False}


TEMPLATE = """heat_template_version: 2021-04-16
parameters:
  db_password:
    type: string
    hidden: true
    default: change-me-please   # a comment stays
  js:
    type: json
    hidden: true
    default:
      password: json-default-pw
  size: {type: number, default: 3}
resources: {}
"""


def test_hidden_defaults_are_cut_and_taken_back_only_when_unchanged() -> None:
    key = b"k" * 32
    cut, digests = hidden_defaults.cut(TEMPLATE, "t.yaml", key)
    assert "change-me-please" not in cut and "json-default-pw" not in cut
    assert "default: 3" in cut and "# a comment stays" in cut
    assert set(digests) == {"db_password", "js"}
    assert hidden_defaults.restore(cut, "t.yaml", TEMPLATE, digests, key)
    changed = TEMPLATE.replace("change-me-please", "changed")
    assert not hidden_defaults.restore(cut, "t.yaml", changed, digests, key)
    assert not hidden_defaults.restore(cut, "t.yaml", TEMPLATE + "# edit\n", digests, key)
    env = "parameters:\n  db_password: x\n"
    assert hidden_defaults.cut(env, "e.yaml", key) == (env, {})


def test_sandbox_log_lines_hold_no_query_values() -> None:
    line = request_line("GET", "/?Action=RunInstances&UserData=c2VjcmV0&Tag.1.Value=pw", 200)
    assert line == "GET / RunInstances 200"
    assert request_line("POST", "/v2.1/servers?x=secret", 400) == "POST /v2.1/servers 400"
