"""A file-backed libcloud compute driver: the local sandbox's generic libcloud cloud.

``driver: filecloud`` in a ``type: libcloud`` target of ``cloudtmpl.yaml`` names it
(examples/four-clouds).  It is a real libcloud ``NodeDriver`` (nodes, sizes, images,
locations, key pairs, volumes and volume snapshots) whose state is a JSON file, so a
cloud survives between CLI processes and several processes may share it (an
exclusive ``flock`` around every call).  It imports only libcloud and the standard
library: it is a cloud for cloudtmpl to talk to, not a part of the engine.

The file is ``$CLOUDTMPL_FILECLOUD_PATH``, else the driver argument ``path``, else
``.cloudtmpl/filecloud.json`` below the current directory.  The driver's key is a
token it does not check beyond "given" (an empty one is refused, as a real cloud
refuses missing credentials).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from libcloud.common.types import InvalidCredsError
from libcloud.compute.base import (
    KeyPair,
    Node,
    NodeDriver,
    NodeImage,
    NodeLocation,
    NodeSize,
    StorageVolume,
    VolumeSnapshot,
)
from libcloud.compute.types import NodeState, StorageVolumeState, VolumeSnapshotState


class FileNodeDriver(NodeDriver):
    """Nodes, volumes and key pairs in ``$CLOUDTMPL_FILECLOUD_PATH`` (or ``args.path``).

    A new node is ``pending`` until it has been listed once, then ``running``; it
    takes ``ex_metadata`` at creation (ownership tags).  Locations: ``lab-de``, ``lab-nl``.
    """

    name = "cloudtmpl file cloud (sandbox)"
    website = "https://example.invalid"
    type = "filecloud"
    _lock = threading.Lock()

    def __init__(self, key: str, secret: str | None = None, path: str | None = None,
                 **kwargs: Any) -> None:
        if not key:
            raise InvalidCredsError("filecloud needs a token")
        super().__init__(key, secret)
        self.path = Path(path or os.environ.get("CLOUDTMPL_FILECLOUD_PATH")
                         or ".cloudtmpl/filecloud.json")

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    data = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    data = {"seq": 0, "nodes": {}, "volumes": {}, "keys": {}, "calls": []}
                yield data
                self.path.write_text(json.dumps(data, indent=1, sort_keys=True))
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _node(self, raw: dict[str, Any]) -> Node:
        return Node(raw["id"], raw["name"], NodeState(raw["state"]), [raw["ip"]],
                    [raw["private_ip"]], self,
                    extra={"location": raw["location"], "metadata": raw["metadata"]})

    def list_nodes(self) -> list[Node]:
        with self._state() as data:
            nodes = [self._node(n) for n in data["nodes"].values()]
            for raw in data["nodes"].values():
                raw["state"] = "running"  # booted once seen
        return nodes

    def create_node(self, name: str, size: NodeSize, image: NodeImage,
                    location: NodeLocation | None = None, auth: Any = None,
                    ex_metadata: dict[str, str] | None = None,
                    ex_userdata: str | None = None) -> Node:
        with self._state() as data:
            data["seq"] += 1
            n = data["seq"]
            raw = {"id": f"fc-{n}", "name": name, "state": "pending", "size": size.id,
                   "image": image.id, "location": location.id if location else None,
                   "metadata": dict(ex_metadata or {}), "ip": f"198.51.100.{n}",
                   "private_ip": f"10.0.0.{n}", "userdata": ex_userdata,
                   "ssh_key": getattr(auth, "pubkey", None)}
            data["nodes"][raw["id"]] = raw
            data["calls"].append(["create_node", name])
        return self._node(raw)

    def destroy_node(self, node: Node) -> bool:
        with self._state() as data:
            data["calls"].append(["destroy_node", node.name])
            if any(v["attached_to"] == node.id for v in data["volumes"].values()):
                raise ValueError(f"node {node.id} still has volumes attached")
            return data["nodes"].pop(node.id, None) is not None

    def list_sizes(self, location: NodeLocation | None = None) -> list[NodeSize]:
        return [NodeSize(s, s, ram, 10, None, 0.0, self) for s, ram in
                (("fc-small", 1024), ("fc-medium", 4096))]

    def list_images(self, location: NodeLocation | None = None) -> list[NodeImage]:
        return [NodeImage("img-2204", "ubuntu-22.04", self),
                NodeImage("img-2404", "ubuntu-24.04", self)]

    def list_locations(self) -> list[NodeLocation]:
        return [NodeLocation("lab-de", "Lab Frankfurt", "DE", self),
                NodeLocation("lab-nl", "Lab Amsterdam", "NL", self)]

    def list_key_pairs(self) -> list[KeyPair]:
        with self._state() as data:
            return [KeyPair(k, v, f"fp-{len(v)}", self) for k, v in data["keys"].items()]

    def import_key_pair_from_string(self, name: str, key_material: str) -> KeyPair:
        with self._state() as data:
            if name in data["keys"]:
                raise ValueError(f"key pair {name} exists")
            data["keys"][name] = key_material
        return KeyPair(name, key_material, f"fp-{len(key_material)}", self)

    def delete_key_pair(self, key_pair: KeyPair) -> bool:
        with self._state() as data:
            return data["keys"].pop(key_pair.name, None) is not None

    def _volume(self, raw: dict[str, Any]) -> StorageVolume:
        state = StorageVolumeState.INUSE if raw["attached_to"] else StorageVolumeState.AVAILABLE
        return StorageVolume(raw["id"], raw["name"], raw["size"], self, state=state,
                             extra={"location": raw["location"],
                                    "attached_to": raw["attached_to"]})

    def list_volumes(self) -> list[StorageVolume]:
        with self._state() as data:
            return [self._volume(v) for v in data["volumes"].values()]

    def create_volume(self, size: int, name: str, location: NodeLocation | None = None,
                      snapshot: Any = None, ex_metadata: dict[str, str] | None = None
                      ) -> StorageVolume:
        with self._state() as data:
            data["seq"] += 1
            raw = {"id": f"vol-{data['seq']}", "name": name, "size": size,
                   "location": location.id if location else None, "attached_to": None,
                   "metadata": dict(ex_metadata or {})}
            data["volumes"][raw["id"]] = raw
        return self._volume(raw)

    def attach_volume(self, node: Node, volume: StorageVolume, device: str | None = None
                      ) -> bool:
        with self._state() as data:
            data["volumes"][volume.id]["attached_to"] = node.id
        return True

    def detach_volume(self, volume: StorageVolume) -> bool:
        with self._state() as data:
            data["volumes"][volume.id]["attached_to"] = None
        return True

    def destroy_volume(self, volume: StorageVolume) -> bool:
        with self._state() as data:
            if data["volumes"].get(volume.id, {}).get("attached_to"):
                raise ValueError(f"volume {volume.id} is attached")
            return data["volumes"].pop(volume.id, None) is not None

    # Snapshots outlive their volume; one is ``creating`` until listed once, then
    # ``available`` (``error`` when ``$CLOUDTMPL_FILECLOUD_SNAPSHOT_ERROR`` is set).
    def _snapshot(self, raw: dict[str, Any]) -> VolumeSnapshot:
        return VolumeSnapshot(raw["id"], self, size=raw["size"], name=raw["name"],
                              # libcloud annotates StorageVolumeState; its drivers
                              # (and VolumeSnapshot's users) use VolumeSnapshotState
                              state=VolumeSnapshotState(raw["state"]),  # type: ignore[arg-type]
                              extra={"volume_id": raw["volume_id"]})

    def create_volume_snapshot(self, volume: StorageVolume, name: str | None = None
                               ) -> VolumeSnapshot:
        with self._state() as data:
            data["seq"] += 1
            raw = {"id": f"snap-{data['seq']}", "name": name, "volume_id": volume.id,
                   "size": volume.size, "state": "creating"}
            data.setdefault("snapshots", {})[raw["id"]] = raw
            data["calls"].append(["create_volume_snapshot", name])
        return self._snapshot(raw)

    def list_volume_snapshots(self, volume: StorageVolume) -> list[VolumeSnapshot]:
        with self._state() as data:
            mine = [s for s in data.setdefault("snapshots", {}).values()
                    if s["volume_id"] == volume.id]
            out = [self._snapshot(s) for s in mine]
            for raw in mine:
                if raw["state"] == "creating":
                    failed = os.environ.get("CLOUDTMPL_FILECLOUD_SNAPSHOT_ERROR")
                    raw["state"] = "error" if failed else "available"
        return out

    def destroy_volume_snapshot(self, snapshot: VolumeSnapshot) -> bool:
        with self._state() as data:
            return data.setdefault("snapshots", {}).pop(snapshot.id, None) is not None
