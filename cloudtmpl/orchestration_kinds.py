"""The orchestration kinds: wait condition handles and wait conditions (Heat's
``OS::Heat::WaitConditionHandle``/``WaitCondition``, ``OS::Heat::SwiftSignalHandle``/
``SwiftSignal``, CloudFormation's ``AWS::CloudFormation::WaitConditionHandle``/
``WaitCondition``).

cloudtmpl has no server a machine could call back, so a handle is an object-store
container (a Swift container, an S3 bucket) owned by the stack, with versioning on, and
a URL that allows one thing: a ``PUT`` of its signal object (a Swift temp URL, a
presigned S3 URL).  Every ``PUT`` is a version: a signal.  The condition's apply polls
them (:mod:`cloudtmpl.providers.waiting`).  See ``docs/wait_conditions.md``.

The handle's URL is a credential: its attributes and its reference are sensitive
(:data:`SECRET_ATTRIBUTES`, :data:`REF_ATTRIBUTE`), sealed wherever they are written.
"""

from __future__ import annotations

from cloudtmpl.resource_spec import Alias, P, ResourceType

HANDLE = ResourceType(
    kind="Cloud::Orchestration::WaitConditionHandle",
    description="Where servers signal that they are ready: an object-store container "
    "(Swift; S3 on AWS) with versioning, and a URL that may only PUT its signal object. "
    "Its reference is that URL.",
    properties={},
    attributes={
        "endpoint": "The signal URL (a Swift temp URL, a presigned S3 URL): PUT a signal "
                    "to it",
        "curl_cli": "curl -i -X PUT '<signal URL>': append --data-binary "
                    "'{\"status\": \"SUCCESS\"}' to signal",
        "token": "'' (the URL is its own credential; kept for Heat's templates)",
        "signal": "JSON: {\"alarm_url\": <signal URL>}",
    },
    ref="the signal URL",
    tags=True,
    ready_timeout=120.0,
    delete_timeout=300.0,
)

#: Heat's limits on a wait condition's count and timeout (seconds).
MAX_COUNT = 1000
MAX_TIMEOUT = 43200

CONDITION = ResourceType(
    kind="Cloud::Orchestration::WaitCondition",
    description="Waits, at apply, until its handle has count SUCCESS signals (a FAILURE "
    "signal fails it, and so does the timeout); then its dependents go on.",
    properties={
        "handle": P("string", required=True,
                    description="The handle (get_resource of a WaitConditionHandle)"),
        "count": P("integer", default=1,
                   description=f"SUCCESS signals to wait for (1 to {MAX_COUNT}); a repeated "
                   "id counts once"),
        "timeout": P("number", default=3600,
                     description=f"Seconds to wait (1 to {MAX_TIMEOUT})"),
    },
    attributes={"data": "{signal id: its data} of the signals received (JSON; "
                        "get_attr may select one: [condition, data, '1'])"},
    ref="the condition's name",
    tags=True,
    # it waits as long as its timeout says (the apply step's own limit is this)
    ready_timeout=float(MAX_TIMEOUT),
    # it may wait for anything (depends_on a server, a deployment): deleted first
    layer=9,
)

KINDS = (HANDLE, CONDITION)

#: The attributes of a kind that are credentials (sealed wherever written).
SECRET_ATTRIBUTES: dict[str, frozenset[str]] = {
    HANDLE.kind: frozenset({"endpoint", "curl_cli", "signal"}),
}
#: Kinds whose reference (get_resource, Ref) is one of their attributes, not their id.
REF_ATTRIBUTE: dict[str, str] = {HANDLE.kind: "endpoint"}

_CFN_CONDITION = {"Handle": "handle", "Count": "count", "Timeout": "timeout"}

ALIASES = (
    # the signal transport is always the object store's (Heat's TEMP_URL_SIGNAL)
    Alias("OS::Heat::WaitConditionHandle", HANDLE.kind,
          ignored=frozenset({"signal_transport"})),
    Alias("OS::Heat::SwiftSignalHandle", HANDLE.kind),
    Alias("AWS::CloudFormation::WaitConditionHandle", HANDLE.kind),
    Alias("OS::Heat::WaitCondition", CONDITION.kind),
    Alias("OS::Heat::SwiftSignal", CONDITION.kind),
    Alias("AWS::CloudFormation::WaitCondition", CONDITION.kind,
          properties=_CFN_CONDITION, attributes={"Data": "data"}),
)
