"""Where moto's wire format differs from real AWS: the rewrites that mend it.

Pure pieces of the compatibility layer (:mod:`cloudtmpl_sandbox.aws` lists every
rewrite): botocore's EC2 model (which parameters are scalar lists, which outputs
have ``Return``), the parameter rewrites, the EC2 and Route53 body rewrites, moto's
validation switches and how a request names its service and region.
"""

from __future__ import annotations

import collections
import os
import re
import sys
import threading
from typing import Any

from cloudtmpl_sandbox.aws_wsgi import Environ, param

DEFAULT_REGION = "us-east-1"
EC2_API_VERSION = "2016-11-15"
ELB_API_VERSION = "2012-06-01"
ROUTE53_OLD = "2012-02-29"
ROUTE53_NEW = "2013-04-01"
DESCRIBE_INSTANCES_ALL = "100000"

EC2_NS_RE = re.compile(rb'xmlns="(http://ec2\.amazonaws\.com/doc/[0-9-]+)"')
ERROR_NS_RE = re.compile(rb'<Response\s+xmlns="[^"]*"\s*>')
SET_NAMES_RE = re.compile(r"'\{((?:'[^']*'(?:, )?)+)\}'")
ROUTE53_NS = f"https://route53.amazonaws.com/doc/{ROUTE53_NEW}/".encode()
ROUTE53_NS_OLD = f"https://route53.amazonaws.com/doc/{ROUTE53_OLD}/".encode()
# moto reads these when its settings module is imported (attribute names in
# moto.settings on the right): the sandbox rejects unknown AMIs, key pairs and
# instance types like AWS does.
VALIDATION_FLAGS = {
    "MOTO_ENABLE_AMI_VALIDATION": "ENABLE_AMI_VALIDATION",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "ENABLE_KEYPAIR_VALIDATION",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
}
# EC2 actions whose ClientToken makes a retry return the first result (moto ignores it)
IDEMPOTENT_ACTIONS = frozenset({"RunInstances", "CreateVolume", "CreateNetworkInterface",
                                 "AllocateAddress", "CreateSubnet", "CreateVpc",
                                 "CreateNatGateway", "CreateRouteTable"})


# --------------------------------------------------------------------------- EC2 model


class _Ec2Model:
    """What botocore's EC2 model says about list parameters and ``Return`` outputs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self.scalar_lists: dict[str, frozenset[str]] = {}
        self.returns_bool: frozenset[str] = frozenset()

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            import botocore.session

            model = botocore.session.get_session().get_service_model("ec2")
            scalar = {"string", "integer", "long", "boolean", "timestamp", "float", "double"}
            lists: dict[str, frozenset[str]] = {}
            returns: set[str] = set()
            for op_name in model.operation_names:
                op = model.operation_model(op_name)
                names: set[str] = set()
                if op.input_shape is not None:
                    for member_name, shape in op.input_shape.members.items():
                        if shape.type_name == "list" and shape.member.type_name in scalar:
                            names.add(_ec2_serialized_name(shape, member_name))
                lists[op_name] = frozenset(names)
                out = op.output_shape
                if out is None or not out.members or "Return" in out.members:
                    returns.add(op_name)
            self.scalar_lists = lists
            self.returns_bool = frozenset(returns)
            self._loaded = True


def _ec2_serialized_name(shape: Any, default: str) -> str:
    """The name botocore's EC2 serializer puts on the wire for a member."""
    ser = shape.serialization
    if "queryName" in ser:
        return str(ser["queryName"])
    if "name" in ser:
        name = str(ser["name"])
        return name[0].upper() + name[1:]
    return default


EC2_MODEL = _Ec2Model()


# ------------------------------------------------------------------ parameter rewrites


def shift_zero_indexes(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Shift list indexes up by one under every list prefix that uses index 0.

    ``ResourceId.0`` → ``ResourceId.1``; ``Tag.0.Key``/``Tag.1.Key`` → ``Tag.1.Key``/
    ``Tag.2.Key``.  Lists that are already 1-based are left alone.
    """
    zero_prefixes: set[tuple[str, ...]] = set()
    split = [key.split(".") for key, _ in pairs]
    for segs in split:
        for i, seg in enumerate(segs):
            if i and seg == "0":
                zero_prefixes.add(tuple(segs[:i]))
    if not zero_prefixes:
        return pairs
    out: list[tuple[str, str]] = []
    for segs, (_, value) in zip(split, pairs, strict=True):
        new = list(segs)
        for i, seg in enumerate(segs):
            if i and seg.isdigit() and tuple(segs[:i]) in zero_prefixes:
                new[i] = str(int(seg) + 1)
        out.append((".".join(new), value))
    return out


def number_bare_lists(pairs: list[tuple[str, str]], names: frozenset[str]) -> list[tuple[str, str]]:
    """``KeyName=a`` → ``KeyName.1=a`` for scalar-list parameters sent bare."""
    if not names:
        return pairs
    counters: dict[str, int] = collections.Counter()
    for key, _ in pairs:
        if "." in key:
            base, _, idx = key.partition(".")
            if base in names and idx.isdigit():
                counters[base] = max(counters[base], int(idx))
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in names:
            counters[key] += 1
            key = f"{key}.{counters[key]}"
        out.append((key, value))
    return out


def fix_ec2_body(action: str, ok: bool, body: bytes) -> bytes:
    """EC2's namespace with its trailing ``/``; ``<return>true</return>`` on a 2xx answer
    of an operation whose output is empty or has ``Return``; an error's ``<Response>``
    without ``xmlns`` and Python-set-printed names (``'{'k2'}'``) as ``'k2'``."""
    body = EC2_NS_RE.sub(lambda m: b'xmlns="' + m.group(1).rstrip(b"/") + b'/"', body)
    if ok:
        if action in EC2_MODEL.returns_bool and b"<return>" not in body:
            closing = f"</{action}Response>".encode()
            if closing in body:
                body = body.replace(closing, b"<return>true</return>" + closing, 1)
    else:
        body = ERROR_NS_RE.sub(b"<Response>", body)
        body = SET_NAMES_RE.sub(_unset, body.decode("utf-8")).encode("utf-8")
    return body


def route53_body(body: bytes) -> bytes:
    """A ``2013-04-01`` answer in the ``2012-02-29`` namespace it was asked in."""
    return body.replace(ROUTE53_NS, ROUTE53_NS_OLD)


def _unset(match: re.Match[str]) -> str:
    names = re.findall(r"'([^']*)'", match.group(1))
    return "'" + ", ".join(names) + "'"


def enable_validation() -> None:
    """Turn on moto's AMI/key-pair/instance-type validation (before moto loads).

    Only the server process calls this, so importing this module has no side
    effects on in-process moto mocks elsewhere.
    """
    for env, attr in VALIDATION_FLAGS.items():
        os.environ[env] = "true"
        settings = sys.modules.get("moto.settings")
        if settings is not None:  # moto already loaded: its flags are read per call
            setattr(settings, attr, True)


def identify(
    environ: Environ,
    path: str,
    query: list[tuple[str, str]],
    form: list[tuple[str, str]] | None,
) -> tuple[str, str]:
    """(service, region) of a request, from its SigV4 scope or else its shape."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("AWS4"):
        try:
            scope = auth.split(",")[0].split()[1].split("=", 1)[1]
            _, _, region, service, _ = scope.split("/")
            return service.lower(), region
        except (IndexError, ValueError):
            pass
    if "HTTP_X_AMZN_AUTHORIZATION" in environ or path.startswith(
        (f"/{ROUTE53_OLD}/", f"/{ROUTE53_NEW}/")
    ):
        return "route53", DEFAULT_REGION
    if path.startswith(f"/{ELB_API_VERSION}"):
        return "elasticloadbalancing", DEFAULT_REGION
    params = query + (form or [])
    version = param(params, "Version")
    if version == ELB_API_VERSION:
        return "elasticloadbalancing", DEFAULT_REGION
    if version == EC2_API_VERSION or (param(params, "Action") and version is None):
        return "ec2", DEFAULT_REGION
    if param(params, "Action"):
        return "other", DEFAULT_REGION
    return "s3", DEFAULT_REGION

