"""The software kinds: configs (scripts, structured configs, cloud-init user data) and
the deployments that run them over SSH from the operator's machine (Heat's
``OS::Heat::Software*`` without an agent), with the SSH settings they take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudtmpl.resource_spec import Alias, P, PropertySpec, ResourceType, local_kind

#: The SSH connection settings: a deployment's or deployment group's ``ssh`` property, a
#: lifecycle hook's ``ssh``, and the template's top-level ``ssh:`` (the stack's defaults,
#: merged under each of those key by key: the resource's own value wins).
SSH_SETTINGS = ("user", "port", "key_file", "key_pair", "bastion", "timeout", "via")
#: ``ssh.via``: which of the server's addresses to connect to when no ``address`` is given
#: (absent: its floating IP, else its public, else its first address).
SSH_VIA = ("floating", "public", "private")

_SSH_HELP = ("SSH settings: user (default cloudtmpl), port (22), key_file, or key_pair (a "
             "KeyPair's name: its generated key .cloudtmpl/keys/<name>.pem), bastion "
             "({host, port, user, key_file} or user@host:port), timeout (seconds to wait for "
             "SSH, default 120), via (floating, public or private: which of the server's "
             "addresses to use when no address is given; default floating, else public, else "
             "private). The template's top-level ssh: gives stack-wide defaults for any of "
             "them. A change of only ssh, address or addresses does not re-run the script")

_CONFIG_REF = "the config id (derived from its content)"

SOFTWARE_CONFIG = local_kind(
    "Cloud::Software::Config",
    "A script and its declared inputs/outputs (Heat's OS::Heat::SoftwareConfig). "
    "Immutable: a change makes a new config (a new id), which re-runs its deployments.",
    properties={
        "group": P("string", default="script", description="script or ungrouped"),
        "config": P("string", default="", description="The script"),
        "inputs": P("list", default=[], description="[{name, default, description, type}]"),
        "outputs": P("list", default=[], description="[{name, description}]"),
        "options": P("map", default={}),
    },
    attributes={"config": "The script"},
    ref=_CONFIG_REF,
)

STRUCTURED_CONFIG = local_kind(
    "Cloud::Software::StructuredConfig",
    "A structured (map) config (Heat's OS::Heat::StructuredConfig): a deployment "
    "writes it, {get_input: NAME} substituted, as JSON to $heat_config_path; its 'run' key, "
    "if any, is the script run then.",
    properties={
        "group": P("string", default="script"),
        "config": P("map", default={}),
        "inputs": P("list", default=[]),
        "outputs": P("list", default=[]),
        "options": P("map", default={}),
    },
    attributes={"config": "The structured config"},
    ref=_CONFIG_REF,
)

SOFTWARE_COMPONENT = local_kind(
    "Cloud::Software::Component",
    "Scripts per action (Heat's OS::Heat::SoftwareComponent): a deployment of it runs the "
    "config of its current action (CREATE, UPDATE, DELETE, SUSPEND, RESUME), nothing where "
    "it has none. Immutable like a config.",
    properties={
        "configs": P("list", required=True,
                     description="[{actions: [CREATE, UPDATE] (the default), config: the "
                     "script, tool: script}], at most one config per action"),
        "inputs": P("list", default=[], description="[{name, default, description, type}]"),
        "outputs": P("list", default=[], description="[{name, description}]"),
        "options": P("map", default={}),
    },
    attributes={"config": "{configs: [...]}, as Heat's component holds them"},
    ref=_CONFIG_REF,
)
#: The actions a component's config can be for (Heat's SoftwareComponent), and its tools
#: cloudtmpl runs (a script over SSH: no puppet or ansible agent on the server).
COMPONENT_ACTIONS = ("CREATE", "DELETE", "UPDATE", "SUSPEND", "RESUME")
COMPONENT_TOOLS = ("script",)


def _user_data_kind(kind: str, description: str, name: str, prop: PropertySpec
                    ) -> ResourceType:
    """A config rendered as a server's user data: ``get_resource`` gives the text."""
    return local_kind(kind, description, properties={name: prop},
                      attributes={"config": "The rendered user data"},
                      ref="the rendered user data")


CLOUD_CONFIG = _user_data_kind(
    "Cloud::Software::CloudConfig",
    "cloud-init #cloud-config user data (Heat's OS::Heat::CloudConfig); "
    "get_resource gives the rendered text, ready for a server's user_data.",
    "cloud_config", P("map", default={}, update_allowed=True),
)

MULTIPART_MIME = _user_data_kind(
    "Cloud::Software::MultipartMime",
    "Several configs as one multipart MIME user data (Heat's "
    "OS::Heat::MultipartMime); get_resource gives the rendered text.",
    "parts", P("list", default=[], update_allowed=True,
               description="[{config: text or config id, filename, type: text|multipart, "
               "subtype: cloud-config|x-shellscript|...}]"),
)

_DEPLOY_PROPS = {
    "config": P("string", update_allowed=True,
                description="A script, or a Software/StructuredConfig id (get_resource)"),
    "config_files": P("map", default={}, update_allowed=True,
                      description="Files to write on the server first: path -> content"),
    "inputs": P("map", default={}, update_allowed=True,
                description="name -> value, given to the script as environment variables"),
    "outputs": P("list", default=[], update_allowed=True,
                 description="Output names (or [{name}]) read from $heat_outputs_path.<name>"),
    "actions": P("list", default=["CREATE", "UPDATE"], update_allowed=True,
                 description="When to run: CREATE, UPDATE, DELETE"),
    "ssh": P("map", default={}, update_allowed=True, description=_SSH_HELP),
}


def _deployment_kind(kind: str, description: str, target: Mapping[str, PropertySpec],
                     attributes: Mapping[str, str], ref: str, **more: Any) -> ResourceType:
    """A deployment: where it runs (``target``) and the common deployment properties;
    made last (layer 5), given an hour to run its script."""
    return local_kind(kind, description, properties={**target, **_DEPLOY_PROPS},
                      attributes=attributes, ref=ref, layer=5, ready_timeout=3600.0,
                      delete_timeout=3600.0, **more)


DEPLOYMENT = _deployment_kind(
    "Cloud::Software::Deployment",
    "Runs a script on a server over SSH from the operator's machine (Heat's "
    "OS::Heat::SoftwareDeployment without an agent); re-runs when the config, inputs or "
    "files change.",
    {
        "server": P("string", description="Server id (get_resource); the address is "
                    "resolved from the stack's floating IPs/server if 'address' is not given"),
        "address": P("string", update_allowed=True,
                     description="Address to SSH to (get_attr of a floating IP or server)"),
    },
    attributes={
        "deploy_stdout": "The script's standard output",
        "deploy_stderr": "The script's standard error",
        "deploy_status_code": "The script's exit status",
        "outputs": "Map of output name -> value ({get_attr: [d, outputs, NAME]})",
        "result": "The output named 'result' (Heat's conventional name)",
        "host_key": "The server's SSH host key fingerprint (pinned after the first run)",
        "host": "address:port it ran on",
    },
    ref="the deployment's name",
    open_attributes=True,
)

DEPLOYMENT_GROUP = _deployment_kind(
    "Cloud::Software::DeploymentGroup",
    "One config deployed to several servers at once (Heat's "
    "OS::Heat::SoftwareDeploymentGroup).",
    {
        "servers": P("map", required=True, update_allowed=True,
                     description="name -> server id"),
        "addresses": P("map", default={}, update_allowed=True,
                       description="name -> address (else resolved per server)"),
    },
    attributes={
        "deploy_stdouts": "name -> standard output",
        "deploy_stderrs": "name -> standard error",
        "deploy_status_codes": "name -> exit status",
        "outputs": "output name -> (server name -> value)",
        "host_keys": "name -> host key fingerprint",
        "deploy_stdout": "name -> standard output (each member's deploy_stdout)",
        "deploy_stderr": "name -> standard error",
        "deploy_status_code": "name -> exit status",
        "result": "name -> the output named 'result'",
    },
    ref="the group's name",
    # any member attribute, its outputs too: {get_attr: [group, OUTPUT]} is name -> value
    open_attributes=True,
)

KINDS = (SOFTWARE_CONFIG, STRUCTURED_CONFIG, SOFTWARE_COMPONENT, CLOUD_CONFIG,
         MULTIPART_MIME, DEPLOYMENT, DEPLOYMENT_GROUP)

_DEPLOY_IGNORED = frozenset({"name", "signal_transport", "input_key",
                             "input_values_validate"})
ALIASES = (
    Alias("OS::Heat::SoftwareConfig", SOFTWARE_CONFIG.kind),
    Alias("OS::Heat::StructuredConfig", STRUCTURED_CONFIG.kind),
    Alias("OS::Heat::SoftwareComponent", SOFTWARE_COMPONENT.kind),
    Alias("OS::Heat::CloudConfig", CLOUD_CONFIG.kind),
    Alias("OS::Heat::MultipartMime", MULTIPART_MIME.kind, ignored=frozenset({"group"})),
    *(Alias(f"OS::Heat::{name}", kind, properties={"input_values": "inputs"},
            ignored=_DEPLOY_IGNORED)
      for name, kind in (("SoftwareDeployment", DEPLOYMENT.kind),
                         ("StructuredDeployment", DEPLOYMENT.kind),
                         ("SoftwareDeploymentGroup", DEPLOYMENT_GROUP.kind),
                         ("StructuredDeploymentGroup", DEPLOYMENT_GROUP.kind))),
)
