"""The dispatcher every cloud's adapter is built on (pure logic: a recording client)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cloudtmpl import resources
from cloudtmpl.model import LiveResource, Placement, Target
from cloudtmpl.providers import kit
from cloudtmpl.providers.base import CloudError

SERVER = resources.SERVER.kind
VOLUME = resources.VOLUME.kind


class RecordingClient:
    def __init__(self) -> None:
        self.target = Target(name="t", type="fake", region="r1")
        self.fetched: list[frozenset[str]] = []
        self.sessions: list[str] = []

    def request_count(self) -> int:
        return len(self.fetched)

    @contextmanager
    def session(self, region: str) -> Iterator[None]:
        self.sessions.append(region)
        yield

    def fetch(self, region: str, stack: str, names: frozenset[str]) -> kit.Listings:
        self.fetched.append(names)
        return kit.Listings({n: [f"{region}:{n}"] for n in names})


class Handler:
    def __init__(self, kind: str, listings: tuple[str, ...]) -> None:
        self.kind = kind
        self.listings = listings
        self.calls: list[tuple[str, Any]] = []

    def _live(self, region: str, address: str) -> LiveResource:
        return LiveResource(address=address, kind=self.kind, physical_id="id-" + address,
                            placement=Placement("t", region), properties={}, attributes={})

    def to_live(self, client: RecordingClient, region: str, stack: str,
                listings: kit.Listings) -> list[LiveResource]:
        return [self._live(region, item) for n in self.listings for item in listings.get(n)]

    def create(self, client: RecordingClient, region: str, want: kit.Desired) -> LiveResource:
        self.calls.append(("create", want))
        return self._live(region, want.address)

    def update(self, client: RecordingClient, live: LiveResource,
               change: kit.Change) -> LiveResource:
        self.calls.append(("update", change))
        return live

    def delete(self, client: RecordingClient, live: LiveResource, timeout: float) -> None:
        self.calls.append(("delete", timeout))


def _adapter() -> tuple[kit.Dispatcher[RecordingClient], Handler, Handler]:
    server = Handler(SERVER, ("servers", "ports"))
    volume = Handler(VOLUME, ("volumes", "ports"))
    return kit.Dispatcher(RecordingClient(), {SERVER: server, VOLUME: volume}), server, volume


def test_discovery_fetches_each_listing_once_for_all_kinds() -> None:
    adapter, _, _ = _adapter()
    found = adapter.discover("r1", frozenset({SERVER, VOLUME, "Cloud::DNS::Zone"}), "s")
    assert adapter.client.fetched == [frozenset({"servers", "ports", "volumes"})]
    assert sorted(r.address for r in found) == sorted(
        ["r1:servers", "r1:ports", "r1:volumes", "r1:ports"])
    assert adapter.kinds == frozenset({SERVER, VOLUME})


def test_discovery_of_no_known_kind_asks_nothing() -> None:
    adapter, _, _ = _adapter()
    assert adapter.discover("r1", frozenset({"Cloud::DNS::Zone"}), "s") == []
    assert adapter.client.fetched == []


def test_update_is_checked_against_the_schema_before_the_handler_runs() -> None:
    adapter, server, _ = _adapter()
    live = server._live("r1", "web")
    with pytest.raises(CloudError, match="image cannot change in place"):
        adapter.update(live, {}, frozenset({"image", "flavor"}), stack="s", spec_hash="h",
                       timeout=1)
    assert server.calls == []
    adapter.update(live, {"flavor": "m1"}, frozenset({"flavor"}), stack="s", spec_hash="h",
                   timeout=1)
    assert server.calls[0][1].changed == frozenset({"flavor"})
    assert adapter.client.sessions == ["r1"]


def test_a_kind_without_handler_is_a_permanent_cloud_error() -> None:
    adapter, _, _ = _adapter()
    with pytest.raises(CloudError, match="the fake provider cannot create Cloud::DNS::Zone"):
        adapter.create("r1", "Cloud::DNS::Zone", stack="s", address="z", name="z",
                       properties={}, spec_hash="h", timeout=1)


def test_create_or_adopt_looks_first_on_a_retry() -> None:
    posts: list[int] = []

    def post() -> str:
        posts.append(1)
        if len(posts) == 1:
            raise ConnectionError("dropped after the request took effect")
        return "second"

    def call(fn: Any) -> Any:
        try:
            return fn()
        except ConnectionError:
            return fn()

    assert kit.create_or_adopt(post, lambda: "made-by-first", call) == "made-by-first"
    assert posts == [1]


def test_metadata_refuses_reserved_keys_with_the_clouds_reason() -> None:
    assert kit.metadata({"metadata": {"a": 1, "b": None}}) == {"a": "1", "b": ""}
    with pytest.raises(CloudError, match=r"'cloudtmpl:x' is reserved \(cloudtmpl:\* keys"):
        kit.metadata({"metadata": {"cloudtmpl:x": "1"}})
    with pytest.raises(CloudError, match=r"'Name' is reserved \(AWS owns it\)"):
        kit.metadata({"metadata": {"Name": "x"}},
                     lambda k: "is reserved (AWS owns it)" if k == "Name" else kit.reserved_key(k))
    assert kit.user_metadata({"cloudtmpl:stack": "s", "team": "a"}) == {"team": "a"}


def test_each_clouds_own_reserved_metadata_keys() -> None:
    from cloudtmpl.providers import openstack
    from cloudtmpl.providers.aws import ec2
    from cloudtmpl.providers.openstack import storage as openstack_storage

    for key in ("Name", "aws:x", "cloudtmpl:stack"):
        with pytest.raises(CloudError, match=rf"metadata key '{key}' is reserved \(Name, "
                           r"cloudtmpl:\* and aws:\* tags are managed by cloudtmpl and AWS\)"):
            ec2.metadata({"metadata": {key: "v"}})
    assert ec2.metadata({"metadata": {"team": 1}}) == {"team": "1"}
    with pytest.raises(CloudError, match=r"'cloudtmpl:x' is reserved \(cloudtmpl:\* keys"):
        openstack.kit.metadata({"metadata": {"cloudtmpl:x": "v"}})
    for key in ("Team", "cloudtmpl-stack", "a b"):
        with pytest.raises(CloudError, match=rf"metadata key '{key}' is not a Swift container "
                           "metadata name"):
            openstack_storage._metadata({"metadata": {key: "v"}})
    assert openstack_storage._metadata({"metadata": {"team-a": "x"}}) == {"team-a": "x"}


def test_call_retries_then_translates_what_still_fails() -> None:
    from cloudtmpl.providers.retry import Retrier, RetryPolicy

    retrier = Retrier(RetryPolicy(max_attempts=3, base_delay=0.0), sleep=lambda s: None)
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    def translate(exc: Exception) -> CloudError:
        return CloudError(f"translated: {exc}", permanent=True)

    assert kit.call(flaky, translate, retrier) == "ok"
    assert len(tries) == 3

    def broken() -> str:
        raise ValueError("bad answer")

    with pytest.raises(CloudError, match="translated: bad answer") as err:
        kit.call(broken, translate, retrier)
    assert isinstance(err.value.__cause__, ValueError)
    tries.clear()
    with pytest.raises(CloudError, match="translated: reset"):
        kit.call(flaky, translate)  # no retrier: once
    assert len(tries) == 1
    mine = CloudError("already the cloud's words", permanent=True)

    def refused() -> str:
        raise mine

    with pytest.raises(CloudError) as same:
        kit.call(refused, translate, retrier)
    assert same.value is mine  # a CloudError is not translated again


def test_stack_items_and_the_tag_rule_every_tagged_cloud_follows() -> None:
    items = [{"tags": {"cloudtmpl:stack": "s", "cloudtmpl:resource": "web"}, "name": "x"},
             {"tags": {"cloudtmpl:stack": "s"}, "name": "s.db"},
             {"tags": {"cloudtmpl:stack": "other", "cloudtmpl:resource": "web"}, "name": "s.a"},
             {"tags": {}, "name": "s.untagged"}]
    found = list(kit.stack_items(items, lambda i: kit.tagged_address(i["tags"], "s", i["name"])))
    assert [(address, item["name"]) for address, item in found] == [("web", "x"), ("db", "s.db")]
    assert list(kit.stack_items([1, 2, 3], lambda i: "" if i == 2 else None)) == [("", 2)]


def test_key_pairs_the_same_way_on_every_cloud() -> None:
    want = kit.Desired("s", "key", "s.key", {"public_key": "  ssh-ed25519 AAAA me@host "},
                       "h", 1.0)
    assert kit.public_key(want) == "ssh-ed25519 AAAA me@host"
    with pytest.raises(CloudError, match=r"key pair s\.key: public_key is required"):
        kit.public_key(kit.Desired("s", "key", "s.key", {}, "h", 1.0))
    assert kit.same_public_key("ssh-ed25519 AAAA other-comment", "ssh-ed25519 AAAA me@host")
    assert not kit.same_public_key("ssh-ed25519 BBBB", "ssh-ed25519 AAAA")
    assert not kit.same_public_key(None, "ssh-ed25519 AAAA")
    live = kit.key_pair_live(Placement("t", "r1"), "key", "s.key", "fp", None)
    assert (live.kind, live.physical_id, live.attributes, live.spec_hash, live.status) == (
        resources.KEYPAIR.kind, "s.key", {"name": "s.key", "fingerprint": "fp"}, None,
        "available")
    assert kit.key_pair_live(Placement("t", "r1"), "key", "s.key", "fp", "ssh-rsa A",
                             "h").attributes["public_key"] == "ssh-rsa A"


def test_attachments_the_same_way_on_every_cloud() -> None:
    assert kit.attachment_ends({"volume_id": "v1", "instance_uuid": "i1"}) == ("v1", "i1")
    with pytest.raises(CloudError, match="a volume attachment needs volume_id and instance_uuid"):
        kit.attachment_ends({"volume_id": "v1"})
    live = kit.attachment_live(Placement("t", "r1"), "att", "v1", "i1", spec_hash="h",
                               status="attached", more={"mountpoint": "/dev/sdh"})
    assert (live.kind, live.physical_id, live.name, live.attributes) == (
        resources.VOLUME_ATTACHMENT.kind, "v1:i1", "att", {})
    assert live.properties == {"instance_uuid": "i1", "volume_id": "v1", "mountpoint": "/dev/sdh"}
    assert kit.attachment_of(live) == ("v1", "i1")


def test_nothing_in_place_returns_the_resource_as_it_is() -> None:
    live = Handler(SERVER, ())._live("r1", "web")
    change = kit.Change({}, frozenset(), "s", "h2", 1.0)
    assert kit.NothingInPlace().update(RecordingClient(), live, change) is live


def test_the_snapshot_before_a_delete_is_marked_alike_on_every_cloud() -> None:
    volume = LiveResource(address="data", kind=VOLUME, physical_id="vol-1",
                          placement=Placement("t", "r1"))
    assert kit.snapshot_marks("s", volume) == {
        "cloudtmpl:stack": "s", "cloudtmpl:resource": "data", "cloudtmpl:snapshot-of": "vol-1"}
    assert kit.snapshot_description("s", volume) == (
        "cloudtmpl: volume vol-1 (s.data) before it was deleted (deletion_policy Snapshot)")
