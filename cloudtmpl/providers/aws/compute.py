"""``Cloud::Compute::Server`` on AWS: an EC2 instance; physical id: the instance id.

Servers take Heat's ``networks``: ``[]`` launches as before (libcloud's
``create_node(ex_metadata=…)``, default VPC); otherwise one raw ``RunInstances``
(libcloud cannot launch on an existing interface nor set a private address) with one
``NetworkInterface.N`` per entry, device index = position, all at launch: ``{port}``
(the port as is; the server may then name no security groups: they come from the
port, as in Heat), ``{subnet}``, ``{network}`` (its first subnet in the server's zone,
or the one holding ``fixed_ip``), optional ``fixed_ip``.  Interfaces made for the
server are deleted with it; ports are not.  ``cloudtmpl:shape`` records which keys
the entries used, so discovery reports ``networks`` in the template's shape.

``RunInstances`` is retried with the same ``ClientToken`` (AWS then returns the first
instance; moto ignores it).  ``flavor`` changes in place (stop, resize, start).
``scheduler_hints: {group: …}`` launches into that placement group
(``Placement.GroupName``, see :mod:`.placement`); EC2 has no other hint.
"""

from __future__ import annotations

import base64
import ipaddress
import uuid
from collections.abc import Mapping
from typing import Any

from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NetworkSubnet, EC2NodeLocation, ExEC2AvailabilityZone

from cloudtmpl.model import TAG_RESOURCE, TAG_SPEC, TAG_STACK, LiveResource
from cloudtmpl.providers import kit
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient, Listed
from cloudtmpl.providers.aws.network import pick_subnet
from cloudtmpl.providers.base import SERVER, CloudError

# States in which an instance is gone (or going) for discovery's purposes.
GONE_STATES = frozenset({"shutting-down", "terminated"})
_LIVE_STATES = ("pending", "running", "stopping", "stopped")


def _nodes(client: AwsClient, region: str, params: Mapping[str, str],
           paginate: bool) -> list[Any]:
    driver = client.driver(region)
    nodes: list[Any] = []
    pages = (client.paged(region, "DescribeInstances", params, client.page_size) if paginate
             else [client.ec2(region, "DescribeInstances", params)])
    for obj in pages:
        for rs in ec2.items(obj, "reservationSet/item"):
            nodes.extend(driver._to_nodes(rs, "instancesSet/item"))
    return nodes


def list_instances(client: AwsClient, region: str, stack: str) -> list[Any]:
    """The listing ``instances``: the stack's instances that are not gone."""
    params = ec2.filters({f"tag:{TAG_STACK}": stack, "instance-state-name": _LIVE_STATES})
    return [node for node in _nodes(client, region, params, paginate=True)
            if node.extra.get("status") not in GONE_STATES]


def get_instance(client: AwsClient, region: str, instance_id: str) -> Any | None:
    try:
        nodes = _nodes(client, region, {"InstanceId.1": instance_id}, paginate=False)
    except CloudError as err:
        if ec2.has_code(err, "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            return None
        raise
    return nodes[0] if nodes else None


def wait_instance(client: AwsClient, region: str, instance_id: str, want: str, timeout: float,
                  what: str) -> Any:
    def fetch() -> tuple[bool, str, Any]:
        node = get_instance(client, region, instance_id)
        if node is None:  # eventual consistency right after RunInstances
            return False, "pending", None
        state = node.extra.get("status") or ""
        if state == want:
            return True, state, node
        if want != "terminated" and state in GONE_STATES:
            reason = node.extra.get("reason") or ""
            raise CloudError(f"{what} went to {state} instead of {want}"
                             + (f": {reason}" if reason else ""), permanent=True,
                             status=state)
        return False, state, node

    return client.poll(timeout, what, fetch)


def settled_instance(client: AwsClient, region: str, instance_id: str, timeout: float,
                     what: str) -> None:
    """Wait out a server that is still pending: EC2 refuses to attach a volume or
    associate an address with it (IncorrectInstanceState). A server adopted after a
    killed run may be in exactly that state while its dependents are created."""
    node = get_instance(client, region, instance_id)
    if node is not None and node.extra.get("status") == "pending":
        wait_instance(client, region, instance_id, "running", timeout, what)


def _nic_value(nic: Any, key: str) -> str | None:
    """One Heat ``networks`` key as a launched interface shows it."""
    if key == "port":
        return str(nic.id)
    if key == "fixed_ip":
        ips = [ip["private_ip"] for ip in nic.extra.get("private_ips") or []
               if str(ip.get("primary")).lower() == "true"]
        return ips[0] if ips else None
    return nic.extra.get("subnet_id" if key == "subnet" else "vpc_id")


def _default_subnet(client: AwsClient, region: str, zone: str) -> str:
    with client.lock:
        cached = client.default_subnets.get((region, zone))
    if cached:
        return cached
    obj = client.ec2(region, "DescribeSubnets",
                     ec2.filters({"availability-zone": zone, "default-for-az": "true"}))
    ids = [s for s in (ec2.text(el, "subnetId") for el in ec2.items(obj, "subnetSet/item")) if s]
    if not ids:
        raise CloudError(
            f"no default subnet in availability zone {zone} ({region}): security groups by "
            "id need a VPC subnet; create a default VPC or choose another zone",
            permanent=True)
    with client.lock:
        client.default_subnets[(region, zone)] = ids[0]
    return ids[0]


def placement_group(props: Mapping[str, Any]) -> str | None:
    """The placement group a server's ``scheduler_hints`` name (its ``group``); EC2 has
    no other hint, so any other key is refused rather than ignored."""
    hints = props.get("scheduler_hints") or {}
    if not isinstance(hints, Mapping):
        raise CloudError("scheduler_hints must be a map", permanent=True)
    other = sorted(str(k) for k in hints if k != "group")
    if other:
        raise CloudError(f"scheduler_hints {', '.join(other)} mean nothing on AWS (only group, "
                         "a Cloud::Compute::ServerGroup, places a server)", permanent=True)
    group = hints.get("group")
    return str(group) if group else None


def _run_on_networks(client: AwsClient, region: str, name: str, props: Mapping[str, Any],
                     tags: Mapping[str, str], nets: list[dict[str, str]]) -> Any:
    """RunInstances with one interface per ``networks`` entry (device index = position).

    libcloud's create_node can neither launch on an existing interface nor set a
    private address, so this is the raw action (tags inside it, as create_node does).
    Interfaces made here are deleted with the instance; ports are not.
    """
    groups = [str(g) for g in props.get("security_groups") or []]
    if any(not g.startswith("sg-") for g in groups):
        raise CloudError("with networks, security_groups must be group ids (sg-…) of the "
                         "network's VPC", permanent=True)
    if groups and any("port" in n for n in nets):
        raise CloudError("a server on a port gets its security groups from the port: set "
                         "them on the Cloud::Network::Port, not on the server",
                         permanent=True)
    zone = str(props.get("availability_zone") or "")
    params: dict[str, str] = {
        "Action": "RunInstances", "ImageId": str(props["image"]),
        "InstanceType": str(props["flavor"]), "MinCount": "1", "MaxCount": "1",
        "ClientToken": uuid.uuid4().hex,
    }
    if zone:
        params["Placement.AvailabilityZone"] = zone
    group = placement_group(props)
    if group:
        params["Placement.GroupName"] = group
    if props.get("key_name"):
        params["KeyName"] = str(props["key_name"])
    if props.get("user_data"):
        params["UserData"] = base64.b64encode(str(props["user_data"]).encode()).decode()
    for i, net in enumerate(nets):
        prefix = f"NetworkInterface.{i + 1}."
        params[prefix + "DeviceIndex"] = str(i)
        if "port" in net:
            if len(net) > 1:
                raise CloudError(f"networks entry {net}: a port brings its own network "
                                 "and addresses; give port alone", permanent=True)
            params[prefix + "NetworkInterfaceId"] = net["port"]
            continue
        ip = net.get("fixed_ip")
        params[prefix + "SubnetId"] = net.get("subnet") or pick_subnet(
            client, region, net["network"], zone or f"{region}a", ip)
        params[prefix + "DeleteOnTermination"] = "true"
        if ip:
            params[prefix + "PrivateIpAddress"] = ip
        for j, group in enumerate(groups, 1):
            params[f"{prefix}SecurityGroupId.{j}"] = group
    params.update(ec2.tag_spec("instance", {ec2.TAG_NAME: name, **tags}))

    def run() -> Any:
        obj = client.raw_ec2(region, params)
        return client.driver(region)._to_nodes(obj, "instancesSet/item")[0]

    return client.call(run)


def _addresses(nics: list[Any], public_ip: str | None) -> dict[str, list[dict[str, Any]]]:
    """Heat's ``addresses`` shape on EC2: each interface's private addresses (and the
    public one of the first, ``OS-EXT-IPS:type`` floating) under its VPC id and under its
    subnet id, each ``{addr, version, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr, port}``
    (the port is the interface id)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i, nic in enumerate(nics):
        mac = nic.extra.get("mac_address") or None
        entries = [_address(ip["private_ip"], "fixed", mac, nic.id)
                   for ip in nic.extra.get("private_ips") or [] if ip.get("private_ip")]
        if i == 0 and public_ip:
            entries.append(_address(public_ip, "floating", mac, nic.id))
        for net in (nic.extra.get("vpc_id"), nic.extra.get("subnet_id")):
            if net:
                out.setdefault(str(net), []).extend(entries)
    return out


def _address(addr: str, kind: str, mac: str | None, port: str) -> dict[str, Any]:
    return {"addr": addr, "version": ipaddress.ip_address(addr).version,
            "OS-EXT-IPS:type": kind, "OS-EXT-IPS-MAC:mac_addr": mac, "port": str(port)}


def show_of(node: Any) -> dict[str, Any]:
    """The instance as EC2 describes it (libcloud's node: its id, name, state,
    addresses and the plain fields of its description), for ``show``."""
    extra = {k: v for k, v in (node.extra or {}).items()
             if isinstance(v, (str, int, float, bool)) or v is None}
    return {"id": str(node.id), "name": str(node.name), "state": str(node.state),
            "private_ips": list(node.private_ips or []),
            "public_ips": list(node.public_ips or []), **extra}


class Server(Listed):
    kind = SERVER
    listings = ("instances",)
    tags = staticmethod(ec2.extra_tags)

    @staticmethod
    def live(client: AwsClient, region: str, address: str, node: Any) -> LiveResource:
        extra = node.extra
        tags = extra.get("tags") or {}
        private_ip = node.private_ips[0] if node.private_ips else None
        public_ip = node.public_ips[0] if node.public_ips else None
        name = tags.get(ec2.TAG_NAME) or node.name or node.id
        status = extra.get("status") or ""
        keys_of = ec2.unshape(tags)
        nics = sorted(extra.get("network_interfaces") or [],
                      key=lambda n: n.extra.get("attachment", {}).get("device_index") or 0)
        if keys_of:  # launched on networks: the groups of the interfaces made for it (a
            # port brings its own groups; the server may name none with one)
            group_sets = [nic.extra.get("groups") or [] for keys, nic in zip(keys_of, nics,
                                                                              strict=False)
                          if "port" not in keys]
            if any("port" in keys for keys in keys_of):
                group_sets = []
        else:
            group_sets = [extra.get("groups") or []]
        groups = ec2.own_groups(sorted({(g.get("group_id") or "", g.get("group_name") or "")
                                        for gs in group_sets for g in gs}))
        addresses = _addresses(nics, public_ip)
        networks = {net: [a["addr"] for a in entries] for net, entries in addresses.items()}
        properties: dict[str, Any] = {
            "image": extra.get("image_id"),
            "flavor": extra.get("instance_type"),
            "key_name": extra.get("key_name") or None,
            "security_groups": groups,
            "availability_zone": extra.get("availability"),
            "metadata": ec2.user_tags(tags),
        }
        if keys_of is not None:
            properties["networks"] = [
                {key: _nic_value(nic, key) for key in keys}
                for keys, nic in zip(keys_of, nics, strict=False)]
        return LiveResource(
            address=address,
            kind=SERVER,
            physical_id=node.id,
            placement=client.placement(region),
            name=name,
            properties=properties,
            attributes={
                "first_address": private_ip,
                "networks": networks,
                "addresses": addresses,
                "accessIPv4": public_ip or "",
                "accessIPv6": "",
                "show": show_of(node),
                "private_ip": private_ip,
                "public_ip": public_ip,
                "name": name,
                "status": status,
            },
            spec_hash=tags.get(TAG_SPEC),
            status=status,
        )

    def create(self, client: AwsClient, region: str, want: kit.Desired) -> LiveResource:
        props, name = want.properties, want.name
        image, flavor = props.get("image"), props.get("flavor")
        if not image or not flavor:
            raise CloudError("a server needs image and flavor", permanent=True)
        nets = ec2.entries(props.get("networks"), ("network", "subnet", "port", "fixed_ip"),
                           "networks")
        tags = {**ec2.metadata(props), TAG_STACK: want.stack, TAG_RESOURCE: want.address,
                TAG_SPEC: want.spec_hash, ec2.TAG_SHAPE: ec2.shape(nets)}
        if nets:
            node = _run_on_networks(client, region, name, props, tags, nets)
            node = wait_instance(client, region, node.id, "running", want.timeout,
                                 f"server {name} ({node.id})")
            return self.live(client, region, want.address, node)
        zone = str(props.get("availability_zone") or f"{region}a")
        group = placement_group(props)
        groups = [str(g) for g in props.get("security_groups") or []]
        by_id = [g for g in groups if g.startswith("sg-")]
        if by_id and len(by_id) != len(groups):
            raise CloudError("security_groups must be all group ids (sg-…) or all group names",
                             permanent=True)
        subnet_id = _default_subnet(client, region, zone) if by_id else None
        token = uuid.uuid4().hex  # same token on every retry: AWS returns the first instance

        def run() -> Any:
            driver = client.driver(region)
            kwargs: dict[str, Any] = {
                "name": name,
                "size": NodeSize(str(flavor), str(flavor), 0, 0, None, 0.0, driver),
                "image": NodeImage(str(image), str(image), driver),
                "location": EC2NodeLocation(zone, zone, None, driver,
                                            ExEC2AvailabilityZone(zone, "available", region)),
                "ex_metadata": tags,
                "ex_clienttoken": token,
            }
            if props.get("key_name"):
                kwargs["ex_keyname"] = str(props["key_name"])
            if props.get("user_data"):
                kwargs["ex_userdata"] = str(props["user_data"])
            if group:
                kwargs["ex_placement_group"] = group
            if by_id:
                kwargs["ex_security_group_ids"] = by_id
                kwargs["ex_subnet"] = EC2NetworkSubnet(subnet_id, subnet_id, "available")
            elif groups:
                kwargs["ex_security_groups"] = groups
            return driver.create_node(**kwargs)

        try:
            node = client.call(run)
        except CloudError as err:
            if not (by_id and ec2.has_code(err, "InvalidSubnetID.NotFound")):
                raise
            with client.lock:  # the cached default subnet is gone: look it up again
                client.default_subnets.pop((region, zone), None)
            subnet_id = _default_subnet(client, region, zone)
            node = client.call(run)
        what = f"server {name} ({node.id})"
        node = wait_instance(client, region, node.id, "running", want.timeout, what)
        return self.live(client, region, want.address, node)

    def update(self, client: AwsClient, live: LiveResource, change: kit.Change) -> LiveResource:
        region = live.placement.region
        iid = live.physical_id
        what = f"server {live.name or live.address} ({iid})"
        node = kit.require(get_instance(client, region, iid), live)
        deadline = client.clock() + change.timeout
        flavor = str(change.properties.get("flavor") or "")
        if "flavor" in change.changed and flavor and node.extra.get("instance_type") != flavor:
            if node.extra.get("status") != "stopped":
                client.call(lambda: client.driver(region).stop_node(node))
                node = wait_instance(client, region, iid, "stopped", change.timeout, what)
            size = NodeSize(flavor, flavor, 0, 0, None, 0.0, client.driver(region))
            client.call(lambda: client.driver(region).ex_change_node_size(node, size))
            client.call(lambda: client.driver(region).start_node(node))
            node = wait_instance(client, region, iid, "running",
                                 max(1.0, deadline - client.clock()), what)
        client.retag(region, iid, ec2.extra_tags(node), change)
        return self.live(client, region, live.address,
                         kit.require(get_instance(client, region, iid), live))

    def delete(self, client: AwsClient, live: LiveResource, timeout: float) -> None:
        region, iid = live.placement.region, live.physical_id
        client.delete_and_wait(region, "TerminateInstances", {"InstanceId.1": iid},
                               "InvalidInstanceID.NotFound",
                               get=lambda: get_instance(client, region, iid), state="status",
                               gone="terminated", timeout=timeout,
                               what=f"server {live.name or live.address} ({iid})")
