"""Software configs and deployments: scripts run over SSH from the operator's machine.

Kinds (all local: placed on the built-in ``local`` target, recorded in the state):

* ``Cloud::Software::Config`` / ``StructuredConfig`` (Heat's ``SoftwareConfig`` /
  ``StructuredConfig``): a value.  Its id (what ``get_resource`` returns) is derived
  from its content (``<stack>.<address>@<hmac>``), so a changed script is a new id and
  every deployment that uses it is updated, as Heat does with its immutable configs.
* ``Cloud::Software::CloudConfig`` / ``MultipartMime``: user data; ``get_resource``
  returns the rendered text, ready for a server's ``user_data``.
* ``Cloud::Software::Deployment`` (Heat's ``SoftwareDeployment`` and
  ``StructuredDeployment``) and ``DeploymentGroup``: run the config on servers over
  SSH (:mod:`cloudtmpl.ssh`), on the actions it names.

**Where to connect.** ``address`` if given (get_attr of a floating IP or server);
else the stack's state is asked for the server's addresses
(:func:`cloudtmpl.providers.addresses.server_addresses`):
its floating IPs (a floating IP whose ``server`` is the server, or whose fixed address
is one of the server's), its ``public_ip`` and its private addresses.  ``ssh.via``
(floating, public or private) picks exactly that kind, and fails naming what the
server has; without it: the floating IP, else the public, else the first address.
The template's top-level ``ssh:`` defaults are already merged into ``ssh`` (by
:func:`cloudtmpl.resolve.with_ssh_defaults`).  A change of only these connection
settings records the new spec without running the script.  **Key**: ``ssh.key_file``,
else ``ssh.key_pair`` (a KeyPair's name: ``.cloudtmpl/keys/<name>.pem``), else the
generated key of the key pair the server was created with.  **Host key**: the
fingerprint seen on the first run is an attribute (so it is in the state), and the
key is pinned in the project's ``.cloudtmpl/keys/known_hosts`` too; later runs on
the same server and address accept only that key.  **Running** (bounded by the
resource's timeout, stopped on interrupts, output kept bounded, logged) is
:class:`~cloudtmpl.providers.scripts.ScriptRunner`'s.

**Secrets.** The adapter does not know the stack's hidden parameters: the
executor seals them (and random strings) wherever attributes are stored.  Logs
(``.cloudtmpl/logs/<stack>/<address>.log``) are redacted: every input value (3
characters or longer) and every random string of the stack is replaced by
``******``.  Private keys are read from files and never leave them.

What a config is as a value is :mod:`cloudtmpl.providers.software`'s; which address
to connect to, :mod:`cloudtmpl.providers.addresses`'s; running one script,
:mod:`cloudtmpl.providers.scripts`'s.  This module is the adapter over them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cloudtmpl import ssh
from cloudtmpl.model import LiveResource, Placement, Target
from cloudtmpl.providers.addresses import loopback, pick_address, server_addresses
from cloudtmpl.providers.base import Adapter, Choice, CloudError
from cloudtmpl.providers.local import random_string
from cloudtmpl.providers.scripts import RunTarget, ScriptRunner
from cloudtmpl.providers.software import (
    CONFIG_ID,
    CONFIG_KINDS,
    SOFTWARE_KINDS,
    actions_of,
    as_text,
    attributes,
    cloud_config_text,
    component_config,
    config_id,
    multipart_text,
    names_of,
    substitute_inputs,
)
from cloudtmpl.resources import (
    DEPLOY_KINDS,
    LOCAL_TARGET,
    RANDOM_STRING,
    SERVER,
    connection_only,
)
from cloudtmpl.software_kinds import (
    CLOUD_CONFIG,
    DEPLOYMENT,
    DEPLOYMENT_GROUP,
    SOFTWARE_COMPONENT,
    STRUCTURED_CONFIG,
)

DEFAULT_USER = "cloudtmpl"
DEFAULT_TIMEOUT = 120.0


#: What a deployment group answers per member (server name -> the member's value), beside
#: its declared outputs' names.
MEMBER_ATTRIBUTES = ("deploy_stdout", "deploy_stderr", "deploy_status_code", "result")


class DeployAdapter:
    """The ``local`` target's adapter for software kinds; every other local kind goes to
    ``inner`` (the :class:`~cloudtmpl.providers.local.LocalAdapter`).

    ``records`` lists the stack's state records (every target) as live resources:
    properties = the last-applied spec, attributes as recorded.
    """

    def __init__(self, inner: Adapter, *, key: bytes, stack: str,
                 records: Callable[[], list[LiveResource]], project_dir: Path,
                 secrets: Callable[[], Sequence[str]] = tuple) -> None:
        self.inner = inner
        self.target: Target = inner.target
        self._key = key
        self._stack = stack
        self._records = records
        self._dir = project_dir
        self._secrets = secrets
        self.runner = ScriptRunner(project_dir)
        self._lock = threading.Lock()
        self._configs: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (kind, props)

    # -- Adapter protocol ---------------------------------------------------------
    def discover(self, region: str, kinds: frozenset[str], stack: str) -> list[LiveResource]:
        found = self.inner.discover(region, kinds - SOFTWARE_KINDS, stack)
        for r in self._records():
            if r.kind in kinds & SOFTWARE_KINDS and r.placement.target == self.target.name:
                attrs = dict(r.attributes) if r.kind in DEPLOY_KINDS else attributes(
                    r.kind, r.properties)
                found.append(LiveResource(
                    address=r.address, kind=r.kind, physical_id=r.physical_id,
                    placement=Placement(LOCAL_TARGET, LOCAL_TARGET), name=r.name,
                    properties={}, attributes=attrs, spec_hash=r.spec_hash, status="ready"))
        return found

    def create(self, region: str, kind: str, *, stack: str, address: str, name: str,
               properties: Mapping[str, Any], spec_hash: str, timeout: float) -> LiveResource:
        if kind not in SOFTWARE_KINDS:
            return self.inner.create(region, kind, stack=stack, address=address, name=name,
                                     properties=properties, spec_hash=spec_hash,
                                     timeout=timeout)
        if kind in DEPLOY_KINDS:
            recorded = self._record(address)
            if recorded is not None and recorded.kind == kind \
                    and recorded.spec_hash == spec_hash:
                # already applied with exactly this spec (the executor asks again for
                # an unchanged deployment's attributes): do not run it again
                return self._live(kind, stack, address, recorded.physical_id,
                                  dict(recorded.attributes), spec_hash)
            attrs = self._deploy("CREATE", stack, address, properties, None, timeout)
            return self._live(kind, stack, address, f"{stack}.{address}", attrs, spec_hash)
        return self._value(kind, stack, address, properties, spec_hash)

    def update(self, live: LiveResource, properties: Mapping[str, Any], changed: frozenset[str],
               *, stack: str, spec_hash: str, timeout: float) -> LiveResource:
        if live.kind not in SOFTWARE_KINDS:
            return self.inner.update(live, properties, changed, stack=stack,
                                     spec_hash=spec_hash, timeout=timeout)
        if live.kind in DEPLOY_KINDS:
            recorded = self._record(live.address)
            prior = dict(recorded.attributes) if recorded is not None else {}
            if recorded is not None and connection_only(live.kind, changed):
                # only how to reach the server changed: Heat re-runs a deployment on
                # config or input changes, so the new spec is recorded, nothing runs
                return self._live(live.kind, stack, live.address, live.physical_id, prior,
                                  spec_hash)
            attrs = self._deploy("UPDATE", stack, live.address, properties, prior, timeout)
            return self._live(live.kind, stack, live.address, live.physical_id, attrs,
                              spec_hash)
        return self._value(live.kind, stack, live.address, properties, spec_hash)

    def delete(self, live: LiveResource, *, timeout: float) -> None:
        if live.kind not in SOFTWARE_KINDS:
            return self.inner.delete(live, timeout=timeout)
        if live.kind not in DEPLOY_KINDS:
            return None
        recorded = self._record(live.address)
        props = dict(live.properties) or (dict(recorded.properties) if recorded else {})
        if "DELETE" in actions_of(props):
            prior = dict(recorded.attributes) if recorded is not None else {}
            self._deploy("DELETE", self._stack, live.address, props, prior, timeout)
        return None

    def lookup_choice(self, region: str, what: str, value: str) -> Choice:
        return self.inner.lookup_choice(region, what, value)

    def value(self, kind: str, *, stack: str, address: str, properties: Mapping[str, Any],
              spec_hash: str) -> LiveResource:
        """An unchanged local resource as get_resource/get_attr read it
        (:class:`~cloudtmpl.providers.local.LocalTarget`): a config or user data
        computed (a config known again by its id, for the deployments that use it), a
        deployment as recorded; no script runs."""
        if kind in DEPLOY_KINDS:
            recorded = self._record(address)
            if recorded is None or recorded.kind != kind:
                return self._live(kind, stack, address, f"{stack}.{address}", {}, spec_hash)
            return self._live(kind, stack, address, recorded.physical_id,
                              dict(recorded.attributes), spec_hash)
        if kind in SOFTWARE_KINDS:
            return self._value(kind, stack, address, properties, spec_hash)
        return self.inner.create(LOCAL_TARGET, kind, stack=stack, address=address,
                                 name=f"{stack}.{address}", properties=properties,
                                 spec_hash=spec_hash, timeout=0)

    def request_count(self) -> int:
        return self.inner.request_count()

    # -- values -------------------------------------------------------------------
    def _live(self, kind: str, stack: str, address: str, physical_id: str,
              attrs: Mapping[str, Any], spec_hash: str | None) -> LiveResource:
        return LiveResource(
            address=address, kind=kind, physical_id=physical_id,
            placement=Placement(LOCAL_TARGET, LOCAL_TARGET), name=f"{stack}.{address}",
            properties={}, attributes=dict(attrs), spec_hash=spec_hash, status="ready")

    def _value(self, kind: str, stack: str, address: str, props: Mapping[str, Any],
               spec_hash: str | None) -> LiveResource:
        props = dict(props)
        if kind in CONFIG_KINDS:
            ident = config_id(self._key, stack, address, kind, props)
            with self._lock:
                self._configs[ident] = (kind, props)
            return self._live(kind, stack, address, ident, attributes(kind, props), spec_hash)
        if kind == CLOUD_CONFIG.kind:
            text = cloud_config_text(props)
        else:
            text = multipart_text(props.get("parts") or [], self._config_text)
        return self._live(kind, stack, address, text, {"config": text}, spec_hash)

    def _config_text(self, ref: str) -> str | None:
        found = self._config(ref)
        if found is None:
            return None
        _, props = found
        body = props.get("config")
        return body if isinstance(body, str) else json.dumps(body)

    def _config(self, ref: Any) -> tuple[str, dict[str, Any]] | None:
        """A config by id: from this run (real values), else its state record (sealed)."""
        if not isinstance(ref, str) or not CONFIG_ID.match(ref):
            return None
        with self._lock:
            hit = self._configs.get(ref)
        if hit is not None:
            return hit
        for r in self._records():
            if r.physical_id == ref and r.kind in CONFIG_KINDS:
                return r.kind, dict(r.properties)
        return None

    def _record(self, address: str) -> LiveResource | None:
        return next((r for r in self._records()
                     if r.address == address and r.placement.target == self.target.name), None)

    # -- deployments --------------------------------------------------------------
    def _deploy(self, action: str, stack: str, address: str, props: Mapping[str, Any],
                prior: Mapping[str, Any] | None, timeout: float) -> dict[str, Any]:
        kind = DEPLOYMENT_GROUP.kind if "servers" in props else DEPLOYMENT.kind
        if action != "DELETE" and action not in actions_of(props):
            return dict(prior or {})  # not an action it runs on: keep what it had
        if kind == DEPLOYMENT.kind:
            return self._run_one(action, stack, address, props, props.get("server"),
                                 props.get("address"), prior or {}, address, timeout)
        servers = dict(props.get("servers") or {})
        addresses = dict(props.get("addresses") or {})
        prior_keys = dict((prior or {}).get("host_keys") or {})
        prior_hosts = dict((prior or {}).get("hosts") or {})
        results: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}

        def one(name: str) -> None:
            try:
                results[name] = self._run_one(
                    action, stack, address, props, servers[name], addresses.get(name),
                    {"host_key": prior_keys.get(name), "host": prior_hosts.get(name),
                     "server": servers[name]}, f"{address}.{name}", timeout)
            except CloudError as err:
                errors[name] = err.message

        with ThreadPoolExecutor(max_workers=min(10, max(1, len(servers)))) as pool:
            list(pool.map(one, sorted(servers)))
        if errors:
            raise CloudError("; ".join(f"{n}: {m}" for n, m in sorted(errors.items())))
        outputs: dict[str, dict[str, Any]] = {}
        for name, res in sorted(results.items()):
            for out, value in (res.get("outputs") or {}).items():
                outputs.setdefault(out, {})[name] = value
        # Heat's group passes any member attribute through, as server name -> value:
        # {get_attr: [group, result]}, [group, deploy_stdout], [group, OUTPUT_NAME]
        members = {attr: {n: r.get(attr) for n, r in sorted(results.items())}
                   for attr in (*MEMBER_ATTRIBUTES, *outputs)}
        return {
            **members,
            "deploy_stdouts": {n: r["deploy_stdout"] for n, r in results.items()},
            "deploy_stderrs": {n: r["deploy_stderr"] for n, r in results.items()},
            "deploy_status_codes": {n: r["deploy_status_code"] for n, r in results.items()},
            "outputs": outputs,
            "host_keys": {n: r["host_key"] for n, r in results.items()},
            "hosts": {n: r["host"] for n, r in results.items()},
        }

    def _script(self, props: Mapping[str, Any], inputs: dict[str, Any], action: str
                ) -> tuple[str, dict[str, str], list[str]]:
        """(script, extra files, declared outputs) with ``inputs`` completed by the
        config's input defaults."""
        config = props.get("config")
        found = self._config(config)
        files = {str(k): as_text(v) for k, v in (props.get("config_files") or {}).items()}
        outputs = names_of(props.get("outputs"))
        if found is None:
            if isinstance(config, str) and CONFIG_ID.match(config):
                raise CloudError(f"config {config} is not known (was it deleted?)")
            return as_text(config), files, outputs
        kind, cfg = found
        for item in cfg.get("inputs") or []:
            if isinstance(item, Mapping) and item.get("name") and item["name"] not in inputs \
                    and item.get("default") is not None:
                inputs[str(item["name"])] = item["default"]
        outputs = names_of(cfg.get("outputs")) + [o for o in outputs
                                                  if o not in names_of(cfg.get("outputs"))]
        if kind == SOFTWARE_COMPONENT.kind:  # the config of the deployment's action
            chosen = component_config(cfg.get("configs"), action)
            if chosen is not None and str(chosen.get("tool") or "script") != "script":
                raise CloudError(f"a component's tool {chosen.get('tool')!r} is not run "
                                 "here: only script", permanent=True)
            return (as_text(chosen.get("config")) if chosen else "true"), files, outputs
        if kind == STRUCTURED_CONFIG.kind:
            body = substitute_inputs(cfg.get("config") or {}, inputs)
            run = body.pop("run", "") if isinstance(body, dict) else ""
            files["$CONFIG"] = json.dumps(body, indent=2, sort_keys=True)
            return str(run or "true"), files, outputs
        return as_text(cfg.get("config")), files, outputs

    def _run_one(self, action: str, stack: str, address: str, props: Mapping[str, Any],
                 server: Any, host: Any, prior: Mapping[str, Any], log_name: str,
                 timeout: float) -> dict[str, Any]:
        settings = dict(props.get("ssh") or {})
        server_id = str(server or "")
        inputs = dict(props.get("inputs") or {})
        script, files, outputs = self._script(props, inputs, action)
        ep = self._endpoint(server_id, host, settings)
        pkey = ssh.load_key(self._key_file(server_id, settings))
        label = f"server {server_id or ep.host} ({ep.label})"
        pinned = None
        if prior.get("host_key") and prior.get("host") == f"{ep.host}:{ep.port}" and \
                str(prior.get("server") or "") == server_id:
            pinned = str(prior["host_key"])
        bastion, bastion_key = self._bastion(settings)
        env = {name: as_text(value) for name, value in inputs.items()}
        env.update({
            "deploy_server_id": server_id, "deploy_action": action,
            "deploy_stack_id": stack, "deploy_resource_name": address,
            "deploy_signal_transport": "NO_SIGNAL",
        })
        config_json = files.pop("$CONFIG", None)
        secrets = [as_text(v) for v in inputs.values() if len(as_text(v)) >= 3]
        secrets += list(self._secrets()) + self._random_strings()
        target = RunTarget(ep, pkey, server_id, pinned, bastion, bastion_key,
                        prior.get("bastion_host_key"),
                        float(settings.get("timeout") or DEFAULT_TIMEOUT))

        def log(text: str, secrets: Sequence[str]) -> None:
            self.runner.log(stack, log_name, action, label, text, secrets)

        ran = self.runner.run(target, ssh.Bundle(script, env, files, outputs, config_json),
                              action=action, label=label, where=address, timeout=timeout,
                              secrets=secrets, log=log)
        report = ran.report
        attrs: dict[str, Any] = {
            "deploy_stdout": report.stdout,
            "deploy_stderr": report.stderr,
            "deploy_status_code": report.status,
            "outputs": {name: report.outputs.get(name) for name in outputs},
            "host_key": ran.host_key,
            "host": f"{ep.host}:{ep.port}",
            "server": server_id,
        }
        cut = {f"deploy_{name}": stream.size for name, stream in report.streams.items()
               if stream.size > ssh.TAIL_BYTES}
        if cut:  # only the tail is kept: how long the whole stream was
            attrs["truncated"] = cut
        if ran.bastion_host_key:
            attrs["bastion_host_key"] = ran.bastion_host_key
        attrs["result"] = report.outputs.get("result")
        for name in outputs:  # Heat's {get_attr: [deployment, OUTPUT_NAME]}
            attrs.setdefault(name, report.outputs.get(name))
        return attrs

    # -- lifecycle hooks ---------------------------------------------------------------
    def run_hook(self, server: LiveResource, hook: Mapping[str, Any], which: str,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        """Run a server's ``pre_delete``/``pre_replace`` hook on it (the drain) over SSH.

        The address and key are found as for a deployment (the hook's ``address`` and
        ``ssh`` settings first); the host key is checked against a deployment's pin of
        the server, else the project's known_hosts pins, else taken on first use (and
        pinned there).  The hook's ``timeout`` (else ``timeout``) bounds connecting and
        the script together.  A failure raises CloudError.
        """
        settings = dict(hook.get("ssh") or {})
        if hook.get("timeout"):
            settings.setdefault("timeout", hook["timeout"])
            timeout = float(hook["timeout"])
        props = {"config": str(hook.get("script") or "true"), "ssh": settings, "inputs": {}}
        # the server's addresses as given (the cloud's, now: a replaced server's record
        # already belongs to its replacement, and its floating IP may have moved there)
        found = server_addresses([server, *self._records()], server.physical_id)
        host = hook.get("address") or pick_address(found, settings.get("via"))
        if not settings.get("key_file") and not settings.get("key_pair") \
                and server.properties.get("key_name"):
            settings["key_pair"] = server.properties["key_name"]
        self._run_one(which.upper(), self._stack, server.address, props, server.physical_id,
                      host, self._pinned(server.physical_id), f"{server.address}.{which}",
                      timeout)

    # -- interrupts (the executor's) -------------------------------------------------
    def watch_interrupts(self, stop: threading.Event) -> None:
        """After ``stop`` is set a running script gets a grace, then is killed."""
        self.runner.watch(stop)

    def abort_scripts(self) -> None:
        """Kill every running script's remote process group now (a second interrupt)."""
        self.runner.abort()

    def _pinned(self, server_id: str) -> dict[str, Any]:
        """What a deployment to this server recorded (its host key), if any."""
        for r in self._records():
            if r.kind == DEPLOYMENT.kind and str(r.attributes.get("server") or "") == server_id:
                return dict(r.attributes)
        return {}

    # -- where and how to connect ---------------------------------------------------
    def _endpoint(self, server_id: str, host: Any, settings: Mapping[str, Any]) -> ssh.Endpoint:
        user = str(settings.get("user") or DEFAULT_USER)
        port = int(settings.get("port") or 22)
        address = str(host) if host else self.resolve_address(server_id, settings.get("via"))
        if self._sandboxed(server_id) and not loopback(address):
            # sandbox clouds report made-up private addresses: never connect to one
            raise CloudError(
                f"server {server_id}: {address} is not a sandbox address (only the loopback "
                "addresses of keyed sandbox servers run sshd): reach it through its "
                "floating IP")
        return ssh.Endpoint(address, port, user)

    def _sandboxed(self, server_id: str) -> bool:
        return any(r.physical_id == server_id and r.placement.target.startswith("sandbox-")
                   for r in self._records())

    def resolve_address(self, server_id: str, via: Any = None) -> str:
        """The server's address of kind ``via`` (floating, public, private), or without
        it its floating IP, else its public IP, else its first address (from the stack's
        state: what the cloud reported when those resources were applied)."""
        if not server_id:
            raise CloudError("a deployment needs 'server' or 'address'")
        return pick_address(server_addresses(self._records(), server_id), via)

    def _key_file(self, server_id: str, settings: Mapping[str, Any]) -> Path:
        keys = self._dir / ".cloudtmpl" / "keys"
        if settings.get("key_file"):
            path = Path(str(settings["key_file"])).expanduser()
            return path if path.is_absolute() else self._dir / path
        name = settings.get("key_pair")
        if not name:
            server = next((r for r in self._records()
                           if r.kind == SERVER.kind and r.physical_id == server_id), None)
            name = server.properties.get("key_name") if server is not None else None
        if not name:
            raise CloudError(
                f"no SSH key for server {server_id or '?'}: set ssh.key_file, or ssh.key_pair "
                "(a KeyPair created by this project), or create the server with such a key pair")
        path = keys / f"{name}.pem"
        if not path.exists():
            raise CloudError(
                f"no private key for key pair {name!r} at {path}: only key pairs cloudtmpl "
                "generated have one; set ssh.key_file for an imported key")
        return path

    def _bastion(self, settings: Mapping[str, Any]
                 ) -> tuple[ssh.Endpoint | None, Any]:
        spec = settings.get("bastion")
        if not spec:
            return None, None
        if isinstance(spec, str):
            user, _, rest = spec.rpartition("@")
            hostname, _, port = rest.partition(":")
            return ssh.Endpoint(hostname, int(port or 22), user or DEFAULT_USER), None
        if isinstance(spec, Mapping):
            key = ssh.load_key(self._key_file("", dict(spec))) \
                if spec.get("key_file") or spec.get("key_pair") else None
            return ssh.Endpoint(str(spec.get("host")), int(spec.get("port") or 22),
                                str(spec.get("user") or DEFAULT_USER)), key
        raise CloudError("ssh.bastion must be user@host:port or {host, port, user, key_file}")

    # -- logs ---------------------------------------------------------------------
    def _random_strings(self) -> list[str]:
        return [random_string(self._key, self._stack, r.address, r.properties)
                for r in self._records() if r.kind == RANDOM_STRING.kind]
