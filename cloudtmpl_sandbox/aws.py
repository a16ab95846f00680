"""The local AWS cloud: moto's own WSGI app behind a wire-compatibility layer.

moto (server mode) answers the AWS query/REST APIs, but in a few places its wire
format differs from real AWS in ways that break unpatched libcloud.  The
:class:`CompatLayer` WSGI middleware rewrites exactly those places (see
``/work/shared/notes/aws-sandbox.md``):

EC2
  * response namespace ``.../doc/2016-11-15`` gains its trailing ``/``; error
    responses lose the ``xmlns`` on ``<Response>`` so libcloud reads the error;
  * Python-set-printed names in error messages (``'{'k2'}'``) become ``'k2'``;
  * 0-based list indexes (``ResourceId.0``, ``Tag.0.Key``) become 1-based, in the
    query string and in form bodies;
  * bare scalar-list parameters (``KeyName=x``) become ``KeyName.1=x``;
  * ``<return>true</return>`` is added to 2xx answers of operations whose output is
    empty or has ``Return``;
  * ``DetachVolume`` without ``InstanceId`` gets the attached instance looked up;
  * ``RunInstances``/``CreateVolume``/... repeated with the same ``ClientToken`` get the
    first call's answer instead of a second object (EC2's idempotency; moto ignores
    the token);
  * ``DescribeInstances`` without ``MaxResults`` and ``InstanceId.N`` gets a large
    ``MaxResults`` (moto pages at 100 and libcloud ignores ``NextToken``); explicit
    ``MaxResults``/``NextToken`` pass through untouched.

S3
  * an object ``PUT`` with the form type ``application/x-www-form-urlencoded`` (curl's
    ``--data-binary`` without ``-H 'Content-Type:'``) keeps its bytes, as S3 keeps
    them (moto would parse them as a form and store nothing); the object's type is
    then ``binary/octet-stream``.
  * internet gateways, elastic IPs, NAT gateways and routes are refused where EC2
    refuses them and moto does not, the default VPC has its internet gateway, and
    classic ELBs carry their own region and answer with their members
    (:mod:`cloudtmpl_sandbox.aws_routing`).

Secrets Manager
  * a secret scheduled for deletion refuses a create of its name and new values, as AWS
    does (:mod:`cloudtmpl_sandbox.aws_secrets`).

All services
  * only the sandbox's own credentials are accepted, and signatures are verified
    (:mod:`cloudtmpl_sandbox.aws_auth`);
  * requests without an ``Authorization`` header (SigV2 query signing, Route53's
    ``X-Amzn-Authorization``) get a dummy SigV4 header naming the service, so moto
    routes them to the right backend instead of S3.

STS (:mod:`cloudtmpl_sandbox.aws_sts`): ``AssumeRole`` is refused as AWS refuses it
(no such role, a trust policy or ``ExternalId`` that does not allow it, a duration
beyond the role's maximum); the temporary keys STS issues then work only with their
session token and until they expire.  ``GET /_sandbox/access-keys`` counts requests
per access key id (zeroed with the request counter).

Route53: API ``2012-02-29`` paths are served by moto's ``2013-04-01`` and the
response namespace is rewritten back.  Classic ELB: ``/2012-06-01/`` → ``/``.

The layer also counts requests per service: ``GET /_sandbox/requests`` returns
``{"total": N, "by_service": {...}}``, ``POST /_sandbox/requests/reset`` zeroes it.
``GET /_sandbox/info`` names the process and its instance id (the manager's liveness
check), ``POST /_sandbox/shutdown`` stops it.  Every ``/_sandbox/*`` and
``/moto-api/*`` request needs the sandbox's token (:mod:`cloudtmpl_sandbox.control`).

Fault knobs (like the OpenStack emulator's): ``GET /_sandbox/config`` shows them,
``POST /_sandbox/config`` merges a JSON object into them (all or nothing; unknown
knobs are a 400), ``POST /_sandbox/config/reset`` restores the defaults.  Every
request to an AWS API (never ``/_sandbox/*`` or ``/moto-api/*``) is counted, then
sleeps ``latency_ms``, then maybe

* ``throttle_rate``: throttled as AWS does: ``throttle_status`` 503 →
  ``RequestLimitExceeded`` (EC2), 400 → ``Throttling`` (query APIs), ``null`` → either;
* ``failure_rate``: a server error: ``failure_status`` 500 → ``InternalError``,
  503 → ``ServiceUnavailable``, ``null`` → either;
* ``drop_rate``: the connection is closed without any response; a share
  ``drop_after`` of those drops happens *after* moto has carried the request out
  (the client cannot tell whether it took effect), the rest before.

Error bodies are AWS-shaped XML (EC2's ``<Response><Errors><Error>``, the
query APIs' ``<ErrorResponse>``).  ``seed`` makes the sequence of faults
reproducible (one random source for all threads).  ``GET /_sandbox/faults``
counts the faults injected, by kind (zeroed with the request counter).

Run: ``python -m cloudtmpl_sandbox.aws --host 127.0.0.1 --port 0 --ready-file F``.
"""


from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from cloudtmpl_sandbox import aws_placement, aws_routing, aws_secrets
from cloudtmpl_sandbox.aws_auth import Accounts
from cloudtmpl_sandbox.aws_compat import (
    DEFAULT_REGION,
    DESCRIBE_INSTANCES_ALL,
    EC2_API_VERSION,
    EC2_MODEL,
    ELB_API_VERSION,
    IDEMPOTENT_ACTIONS,
    ROUTE53_NEW,
    ROUTE53_OLD,
    enable_validation,
    fix_ec2_body,
    identify,
    number_bare_lists,
    route53_body,
    shift_zero_indexes,
)
from cloudtmpl_sandbox.aws_console import Ec2Boots
from cloudtmpl_sandbox.aws_faults import (
    FAULT_MESSAGES,
    REASONS,
    Faults,
    RequestCounter,
    aws_error_body,
    drop_connection,
)
from cloudtmpl_sandbox.aws_hosts import Ec2Hosts, changes_instances
from cloudtmpl_sandbox.aws_sts import (
    Sts,
    access_key_of,
    get_role_query,
    role_from_get_role,
)
from cloudtmpl_sandbox.aws_wsgi import (
    Environ,
    StartResponse,
    WSGIApp,
    call_app,
    dummy_sigv4,
    encode,
    json_reply,
    param,
    read_body,
    respond,
    set_path,
    set_query,
)
from cloudtmpl_sandbox.control import (
    Identity,
    refuse_wsgi,
    shut_down_soon,
    unauthorized_headers,
)
from cloudtmpl_sandbox.manager import ACCESS_KEY, SECRET_KEY
from cloudtmpl_sandbox.serving import serve

SERVICE_NAME = "cloudtmpl-sandbox-aws"
_FORM = "application/x-www-form-urlencoded"
_SIGNED_SERVICES = frozenset({"ec2", "elasticloadbalancing", "route53"})
_INSTANCE_ID_RE = re.compile(r"<instanceId>(i-[0-9a-f]+)</instanceId>")
_STATUS_TEXT = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN",
                404: "NOT FOUND",
                500: "INTERNAL SERVER ERROR"}


class CompatLayer:
    """WSGI middleware in front of moto's app; see the module docstring."""

    def __init__(self, app: WSGIApp, identity: Identity, hosts: Ec2Hosts | None = None
                 ) -> None:
        self.app = app
        self.identity = identity  # the control token of /_sandbox/* and /moto-api/*
        self.hosts = hosts or Ec2Hosts(enabled=False)
        self.boots = Ec2Boots(self.hosts)  # user data runs, console logs (aws_console)
        self.counter = RequestCounter()
        self.faults = Faults()
        self.sts = Sts()  # AssumeRole checks and the temporary keys it issued (aws_sts)
        self.accounts = Accounts(self.sts, ACCESS_KEY, SECRET_KEY)  # whose keys (aws_auth)
        self.placement = aws_placement.PlacementGroups()  # moto has none (aws_placement)
        self.routing = aws_routing.Routing()  # stricter than moto (aws_routing)
        # ClientToken idempotency, as EC2 does it (moto ignores the token):
        # (region, action, token) -> the first successful answer
        self._tokens: dict[tuple[str, str, str], tuple[str, list[tuple[str, str]], bytes]] = {}
        self._token_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._tokens_lock = threading.Lock()

    # ---- plumbing

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith(("/_sandbox/", "/moto-api")):
            denied = refuse_wsgi(environ, self.identity.token)
            if denied is not None:
                denied_status, data = denied
                headers = [("Content-Type", "application/json"),
                           *(unauthorized_headers().items() if denied_status == 401 else ())]
                return respond(start_response, f"{denied_status} {_STATUS_TEXT[denied_status]}",
                                headers, json.dumps(data).encode("utf-8"))
        if path.startswith("/_sandbox/"):
            return self._control(environ, start_response, path)
        if path.startswith("/moto-api"):
            if path.startswith("/moto-api/reset"):
                with self._tokens_lock:
                    self._tokens.clear()
                    self._token_locks.clear()
                self.sts.reset()
                self.placement.reset()
                self.routing.reset()
            self.counter.add("moto-api")
            if path.startswith("/moto-api/reset"):
                answer = call_app(self.app, environ)
                self.hosts.sync()  # every instance is gone: so are their sshds
                self.boots.sync()  # and their boots
                return respond(start_response, *answer)
            return self.app(environ, start_response)

        form = self._read_form(environ)
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        service, region = identify(environ, path, query, form)
        self.counter.add(service)
        self.sts.count(access_key_of(environ, query + (form or [])))
        refused = self.accounts.refuse(service, environ)
        if refused is not None:  # not our key, not its session token, not its signature
            return respond(start_response, *refused)
        latency, fault, status, code = self.faults.decide(service)
        if latency > 0:
            time.sleep(latency)
        if fault == "error":
            body = aws_error_body(service, code, FAULT_MESSAGES[code])
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", str(uuid.uuid4()))]
            return respond(start_response, f"{status} {REASONS[status]}", headers, body)
        if fault == "drop_before":
            drop_connection(environ)
        if "HTTP_AUTHORIZATION" not in environ and service in _SIGNED_SERVICES:
            access = param(query, "AWSAccessKeyId") or param(form or [], "AWSAccessKeyId")
            environ["HTTP_AUTHORIZATION"] = dummy_sigv4(service, region, access or "sandbox")
        if fault == "drop_after":
            # carry the request out in full, then lose the answer
            call_app(lambda env, sr: self._route(env, sr, service, region, path, query, form),
                  environ)
            drop_connection(environ)
        return self._route(environ, start_response, service, region, path, query, form)

    def _route(
        self,
        environ: Environ,
        start_response: StartResponse,
        service: str,
        region: str,
        path: str,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]] | None,
    ) -> Iterable[bytes]:
        if service == "ec2":
            return self._ec2(environ, start_response, query, form, region)
        if service == "route53":
            return self._route53(environ, start_response, path)
        if service == "secretsmanager":
            refused = aws_secrets.refusal(self.app, environ)
            if refused is not None:
                return respond(start_response, *refused)
        if service == "sts":
            return self._sts(environ, start_response, query + (form or []))
        if service == "elasticloadbalancing":
            if path.startswith(f"/{ELB_API_VERSION}"):
                set_path(environ, "/")
            return self._elb(environ, start_response, region, query, form)
        if service == "s3" and form is not None and environ.get("REQUEST_METHOD") == "PUT":
            # an object PUT with curl's form type (a wait condition's signal): S3 keeps
            # the bytes as sent, moto would parse them as a form and keep none; it is
            # given them as bytes (stored with the type binary/octet-stream)
            environ["CONTENT_TYPE"] = "binary/octet-stream"
        return self.app(environ, start_response)

    def _control(
        self, environ: Environ, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = path.rstrip("/")
        if path == "/_sandbox/requests" and method == "GET":
            return json_reply(start_response, self.counter.snapshot())
        if path == "/_sandbox/faults" and method == "GET":
            return json_reply(start_response, self.faults.snapshot())
        if path == "/_sandbox/config" and method == "GET":
            return json_reply(start_response, self.faults.knobs.as_dict())
        if path == "/_sandbox/config" and method == "POST":
            try:
                data = json.loads(read_body(environ) or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                return json_reply(start_response, self.faults.configure(data))
            except (ValueError, TypeError) as exc:
                return json_reply(start_response, {"error": str(exc)}, "400 BAD REQUEST")
        if path == "/_sandbox/config/reset" and method == "POST":
            return json_reply(start_response, self.faults.reset())
        if path == "/_sandbox/access-keys" and method == "GET":
            return json_reply(start_response, self.sts.counts())
        if path == "/_sandbox/requests/reset" and method == "POST":
            self.counter.reset()
            self.faults.clear_counts()
            self.sts.clear_counts()
            return json_reply(start_response, {"total": 0, "by_service": {}})
        if path == "/_sandbox/info" and method == "GET":
            return json_reply(start_response, {"service": SERVICE_NAME, "pid": os.getpid(),
                                          "instance": self.identity.instance})
        if path == "/_sandbox/shutdown" and method == "POST":
            shut_down_soon()
            return json_reply(start_response, {"shutdown": True})
        handled = self.hosts.ssh.admin(method, path)  # sshd-backed instances (aws_hosts)
        handled = handled or self.boots.boots.admin(method, path)  # boots (aws_console)
        if handled is not None:
            code, data = handled
            return json_reply(start_response, data, f"{code} {_STATUS_TEXT.get(code, 'OK')}")
        return json_reply(
            start_response, {"error": f"no such sandbox endpoint: {path}"}, "404 NOT FOUND"
        )

    @staticmethod
    def _read_form(environ: Environ) -> list[tuple[str, str]] | None:
        """Read (and put back) a form-encoded POST body; None if there is none."""
        if not str(environ.get("CONTENT_TYPE", "")).startswith(_FORM):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)

    # ---- EC2

    def _ec2(
        self,
        environ: Environ,
        start_response: StartResponse,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]] | None,
        region: str = DEFAULT_REGION,
    ) -> Iterable[bytes]:
        EC2_MODEL.load()
        action = param(query, "Action") or param(form or [], "Action") or ""
        self.routing.seed(region, access_key_of(environ, query + (form or [])) or "",
                          lambda pairs: self._ask(environ, pairs))
        if aws_placement.handles(action, query + (form or [])):
            code, xml = aws_placement.answer(
                self.placement, region, action, query + (form or []),
                lambda r, ids: self._instance_states(environ, ids))
            return respond(start_response, f"{code} {_STATUS_TEXT.get(code, 'OK')}",
                           [("Content-Type", "text/xml")], xml.encode("utf-8"))
        token = param(query, "ClientToken") or param(form or [], "ClientToken")
        if token and action in IDEMPOTENT_ACTIONS:
            key = (region, action, token)
            with self._tokens_lock:
                lock = self._token_locks.setdefault(key, threading.Lock())
            with lock:  # a retry waits for its first attempt, then gets its answer
                cached = self._tokens.get(key)
                if cached is not None:
                    return respond(start_response, *cached)
                status, headers, body = call_app(
                    lambda env, sr: self._ec2_call(env, sr, query, form, action, region),
                    environ)
                if status.startswith("2"):
                    with self._tokens_lock:
                        self._tokens[key] = (status, headers, body)
                return respond(start_response, status, headers, body)
        return self._ec2_call(environ, start_response, query, form, action, region)

    def _ec2_call(
        self,
        environ: Environ,
        start_response: StartResponse,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]] | None,
        action: str,
        region: str,
    ) -> Iterable[bytes]:
        names = EC2_MODEL.scalar_lists.get(action, frozenset())

        def fix(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
            return list(number_bare_lists(shift_zero_indexes(pairs), names))

        new_query = fix(query)
        new_form = fix(form) if form is not None else None
        merged = new_query + (new_form or [])
        extra: list[tuple[str, str]] = []
        if action == "DescribeInstances" and not any(
            k == "MaxResults" or k.startswith("InstanceId.") for k, _ in merged
        ):
            extra.append(("MaxResults", DESCRIBE_INSTANCES_ALL))
        if action == "DetachVolume" and param(merged, "InstanceId") is None:
            volume_id = param(merged, "VolumeId")
            instance_id = self._attached_instance(environ, volume_id) if volume_id else None
            if instance_id:
                extra.append(("InstanceId", instance_id))
        if new_form is not None and environ.get("REQUEST_METHOD") == "POST":
            new_form += extra
        else:
            new_query += extra
        if new_query != query:
            set_query(environ, encode(new_query))
        if new_form is not None and new_form != form:
            body = encode(new_form).encode("utf-8")
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))

        group = None
        if action == "RunInstances":  # Placement.GroupName: a group of ours (aws_placement)
            try:
                group = self.placement.check_launch(
                    region, merged, lambda r, ids: self._instance_states(environ, ids))
            except aws_placement.Ec2Error as err:
                return respond(start_response, f"{err.status} {_STATUS_TEXT[err.status]}",
                               [("Content-Type", "text/xml")],
                               aws_placement.error_xml(err).encode("utf-8"))
        ask = lambda pairs: self._ask(environ, pairs)  # noqa: E731
        refused = self.routing.refuse(region, action, merged, ask)  # stricter than moto
        if refused is not None:
            return respond(start_response, f"{refused.status} {_STATUS_TEXT[refused.status]}",
                           [("Content-Type", "text/xml")],
                           aws_placement.error_xml(refused).encode("utf-8"))
        status, headers, body = call_app(self.app, environ)
        ok = status.startswith("2")
        if ok:
            body = self.routing.after(region, action, merged, body, ask)
        if ok and group is not None:
            self.placement.joined(region, group, _INSTANCE_ID_RE.findall(body.decode("utf-8")))
        if ok and changes_instances(action):
            self.hosts.sync()
            self.boots.sync()
        if ok:  # a reboot boots again; GetConsoleOutput shows the console log
            body = self.boots.after(action, merged, body)
        body = fix_ec2_body(action, ok, body)
        return respond(start_response, status, headers, body)

    def _instance_states(self, environ: Environ, ids: list[str]) -> dict[str, tuple[str, str]]:
        """Ask moto (in-process) for the state and zone of the instances ``ids`` that exist."""
        if not ids:
            return {}
        pairs = [("Action", "DescribeInstances"), ("Version", EC2_API_VERSION),
                 ("Filter.1.Name", "instance-id"),
                 *((f"Filter.1.Value.{i}", v) for i, v in enumerate(ids, 1))]
        status, _, body = call_app(self.app, self._sub_request(environ, encode(pairs)))
        if not status.startswith("2"):
            return {}
        out = {}
        for inst in ET.fromstring(body).findall(".//{*}instancesSet/{*}item"):
            out[inst.findtext("{*}instanceId") or ""] = (
                inst.findtext("{*}instanceState/{*}name") or "",
                inst.findtext("{*}placement/{*}availabilityZone") or "")
        return out

    def _ask(self, environ: Environ, pairs: list[tuple[str, str]],
             version: str = EC2_API_VERSION) -> ET.Element | None:
        """One query to moto (in-process, as the caller's account and to the caller's
        service: EC2 unless ``version`` says otherwise); None if refused."""
        qs = encode([pairs[0], ("Version", version), *pairs[1:]])
        status, _, body = call_app(self.app, self._sub_request(environ, qs))
        if not status.startswith("2"):
            return None
        try:
            return ET.fromstring(body)
        except ET.ParseError:
            return None

    def _attached_instance(self, environ: Environ, volume_id: str) -> str | None:
        """Ask moto (in-process) which instance a volume is attached to."""
        root = self._ask(environ, [("Action", "DescribeVolumes"), ("VolumeId.1", volume_id)])
        return None if root is None else root.findtext(
            ".//{*}attachmentSet/{*}item/{*}instanceId")

    # ---- classic ELB

    def _elb(self, environ: Environ, start_response: StartResponse, region: str,
             query: list[tuple[str, str]], form: list[tuple[str, str]] | None
             ) -> Iterable[bytes]:
        """moto's answer with the balancer's own region in its DNS name; member actions
        answered with the members, and a member registered again not listed twice."""
        action = param(query + (form or []), "Action") or ""
        name = param(query + (form or []), "LoadBalancerName") or ""

        def ask(pairs: list[tuple[str, str]]) -> ET.Element | None:
            return self._ask(environ, pairs, ELB_API_VERSION)

        members = aws_routing.elb_members(ask, name) if action in \
            aws_routing.ELB_MEMBER_ACTIONS else None
        if members is not None and action == "RegisterInstancesWithLoadBalancer":
            if form is not None:
                body = encode(aws_routing.without_members(form, set(members))).encode("utf-8")
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
            else:
                set_query(environ, encode(aws_routing.without_members(query, set(members))))
        status, headers, body = call_app(self.app, environ)
        if members is not None and status.startswith("2"):
            body = aws_routing.members_answer(body, aws_routing.elb_members(ask, name) or [])
        return respond(start_response, status, headers, aws_routing.elb_dns(region, body))

    # ---- STS

    def _sts(self, environ: Environ, start_response: StartResponse,
             params: list[tuple[str, str]]) -> Iterable[bytes]:
        access_key = access_key_of(environ, params)
        if param(params, "Action") == "AssumeRole":
            refused = self.sts.assume_role(
                params, access_key, lambda name: self._get_role(environ, name, access_key))
            if refused is not None:
                return respond(start_response, *refused)
        status, headers, body = call_app(self.app, environ)
        if status.startswith("2"):
            self.sts.remember(body)
        return respond(start_response, status, headers, body)

    def _get_role(self, environ: Environ, name: str,
                  access_key: str | None) -> dict[str, Any] | None:
        """Ask moto's IAM (in-process) for a role, as the caller's account."""
        qs = encode(list(get_role_query(name)))
        sub = self._sub_request(environ, qs)
        sub["HTTP_AUTHORIZATION"] = dummy_sigv4("iam", DEFAULT_REGION, access_key or "sandbox")
        status, _, body = call_app(self.app, sub)
        return role_from_get_role(body) if status.startswith("2") else None

    @staticmethod
    def _sub_request(environ: Environ, qs: str) -> Environ:
        """A GET ``/?qs`` to moto with the transport keys of ``environ``."""
        sub = {
            k: v
            for k, v in environ.items()
            if k.startswith(("HTTP_", "SERVER_", "wsgi.", "REMOTE_")) and k != "HTTP_CONTENT_LENGTH"
        }
        sub.pop("HTTP_X_AMZ_SECURITY_TOKEN", None)
        sub.update(
            {
                "REQUEST_METHOD": "GET",
                "SCRIPT_NAME": "",
                "PATH_INFO": "/",
                "QUERY_STRING": qs,
                "RAW_URI": "/?" + qs,
                "REQUEST_URI": "/?" + qs,
                "CONTENT_LENGTH": "0",
                "CONTENT_TYPE": "",
                "wsgi.input": io.BytesIO(b""),
            }
        )
        return sub

    # ---- Route53

    def _route53(
        self, environ: Environ, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        old = f"/{ROUTE53_OLD}/"
        if not path.startswith(old):
            return self.app(environ, start_response)
        set_path(environ, f"/{ROUTE53_NEW}/" + path[len(old) :])
        status, headers, body = call_app(self.app, environ)
        return respond(start_response, status, headers, route53_body(body))


# ----------------------------------------------------------------------------- server


def build_app(identity: Identity, ssh: bool | None = None) -> CompatLayer:
    """moto's app, built the way ``ThreadedMotoServer`` builds it, behind the layer.

    ``ssh``: instances launched with a key pair get a real sshd (see aws_hosts);
    None: when sshd is installed.
    """
    enable_validation()
    from moto.server import DomainDispatcherApplication, create_backend_app

    hosts = Ec2Hosts(enabled=ssh)
    hosts.install()
    return CompatLayer(DomainDispatcherApplication(create_backend_app), identity, hosts)


def _warm_up(app: CompatLayer, regions: Iterable[str]) -> None:
    """Load the EC2 model and moto's EC2 backends before announcing readiness."""
    EC2_MODEL.load()
    for region in regions:
        qs = encode([("Action", "DescribeRegions"), ("Version", EC2_API_VERSION)])
        environ: Environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "QUERY_STRING": qs,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "0",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": dummy_sigv4("ec2", region, "sandbox"),
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        call_app(app.app, environ)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-warm-up", action="store_true")
    parser.add_argument("--no-ssh", action="store_true",
                        help="no sshd for instances launched with a key pair")


def _build(args: argparse.Namespace, identity: Identity) -> tuple[WSGIApp, Callable[[], None]]:
    app = build_app(identity, ssh=False if args.no_ssh else None)
    if not args.no_warm_up:
        _warm_up(app, ("us-east-1", "eu-central-1"))
    return app, app.boots.shut_down  # every sshd and boot process this sandbox started


def main(argv: list[str] | None = None) -> int:
    return serve("aws", "AWS", __doc__, _arguments, _build, argv)


if __name__ == "__main__":
    sys.exit(main())
