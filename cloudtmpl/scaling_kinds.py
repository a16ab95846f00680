"""The scaling kinds: the scaling group (``Cloud::ScalingGroup``,
``OS::Heat::AutoScalingGroup``), expanded into members at resolve time like a
resource group (:mod:`cloudtmpl.resolve.scaling_groups`), and the scaling policy
(``Cloud::Scaling::Policy``, ``OS::Heat::ScalingPolicy``), a local kind that
``cloudtmpl signal`` reads (:mod:`cloudtmpl.signalling`).

The policy's ``signal_url`` and ``alarm_url`` attributes are not offered yet: a
signal is the ``cloudtmpl signal`` command.  The alarm kinds that would call those
URLs are known by name only, to say they are not supported.
"""

from __future__ import annotations

from cloudtmpl.resource_spec import Alias, P, local_kind
from cloudtmpl.scaling import ADJUSTMENT_TYPES

#: the types that are a scaling group (a composite: its members are the resources)
SCALING_GROUP_TYPES = ("Cloud::ScalingGroup", "OS::Heat::AutoScalingGroup")
#: the groups of servers made from a launch configuration (Heat's AWS-style groups)
INSTANCE_GROUP = "OS::Heat::InstanceGroup"
AWS_GROUP = "AWS::AutoScaling::AutoScalingGroup"
INSTANCE_GROUP_TYPES = (INSTANCE_GROUP, AWS_GROUP)
INSTANCE_GROUP_PROPERTIES = ("AvailabilityZones", "LaunchConfigurationName", "Size",
                             "LoadBalancerNames", "Tags")
AWS_GROUP_PROPERTIES = ("AvailabilityZones", "LaunchConfigurationName", "InstanceId",
                        "MaxSize", "MinSize", "Cooldown", "DesiredCapacity",
                        "HealthCheckGracePeriod", "HealthCheckType", "LoadBalancerNames",
                        "VPCZoneIdentifier", "Tags")
#: Heat's properties that cloudtmpl refuses rather than ignores (they would change
#: what is made: an instance copied, members added to load balancers)
UNSUPPORTED_GROUP_PROPERTIES = ("InstanceId", "LoadBalancerNames")
#: a launch configuration's properties -> the member server's
LAUNCH_PROPERTIES = {"ImageId": "image", "InstanceType": "flavor", "KeyName": "key_name",
                     "SecurityGroups": "security_groups", "UserData": "user_data"}
#: an AutoScalingGroup's properties (Heat's properties_schema)
GROUP_PROPERTIES = ("resource", "min_size", "max_size", "desired_capacity", "cooldown",
                    "rolling_updates")
ROLLING_UPDATES = ("min_in_service", "max_batch_size", "pause_time")

SCALING_POLICY = local_kind(
    "Cloud::Scaling::Policy",
    "How a scaling group changes size when signalled (`cloudtmpl signal STACK POLICY`): "
    "Heat's OS::Heat::ScalingPolicy. Nothing is made in a cloud.",
    properties={
        "auto_scaling_group_id": P("string", required=True,
                                   description="The group: {get_resource: a_scaling_group}"),
        "scaling_adjustment": P("number", required=True, update_allowed=True,
                                description="Size of the adjustment"),
        "adjustment_type": P("string", required=True, update_allowed=True,
                             description="One of " + ", ".join(ADJUSTMENT_TYPES)),
        "cooldown": P("number", update_allowed=True,
                      description="Seconds after a resize in which this policy refuses "
                      "signals (default: the group's cooldown)"),
        "min_adjustment_step": P("integer", update_allowed=True,
                                 description="percent_change_in_capacity only: add or "
                                 "remove at least this many"),
    },
    attributes={},
    ref="the policy's name",
)

LAUNCH_CONFIGURATION = local_kind(
    "Cloud::Scaling::LaunchConfiguration",
    "What each server of an InstanceGroup or AWS::AutoScaling::AutoScalingGroup is made "
    "of (Heat's AWS::AutoScaling::LaunchConfiguration). Nothing is made in a cloud.",
    properties={
        "ImageId": P("string", required=True, description="Image id or abstract image name"),
        "InstanceType": P("string", required=True, description="Flavor (instance type)"),
        "KeyName": P("string", description="Key pair name"),
        "SecurityGroups": P("list", description="Security group ids"),
        "UserData": P("string", description="Boot-time user data"),
    },
    attributes={},
    ref="the launch configuration's name",
)

KINDS = (SCALING_POLICY, LAUNCH_CONFIGURATION)

#: AWS::AutoScaling::ScalingPolicy's property names -> the policy's
AWS_POLICY_NAMES = {"AutoScalingGroupName": "auto_scaling_group_id",
                    "ScalingAdjustment": "scaling_adjustment",
                    "AdjustmentType": "adjustment_type", "Cooldown": "cooldown",
                    "MinAdjustmentStep": "min_adjustment_step"}
AWS_POLICY = "AWS::AutoScaling::ScalingPolicy"
LAUNCH_TYPE = "AWS::AutoScaling::LaunchConfiguration"

ALIASES = (
    Alias("OS::Heat::ScalingPolicy", SCALING_POLICY.kind),
    Alias(AWS_POLICY, SCALING_POLICY.kind, properties=AWS_POLICY_NAMES),
    Alias(LAUNCH_TYPE, LAUNCH_CONFIGURATION.kind),
)

#: Heat's alarm kinds, which signal a policy's alarm_url: known, not supported
UNSUPPORTED_TYPES = {
    "OS::Aodh::Alarm": "an Aodh alarm",
    "OS::Aodh::GnocchiAggregationByResourcesAlarm": "an Aodh (Gnocchi) alarm",
    "OS::Aodh::GnocchiAggregationByMetricsAlarm": "an Aodh (Gnocchi) alarm",
    "OS::Aodh::GnocchiResourcesAlarm": "an Aodh (Gnocchi) alarm",
    "OS::Aodh::CompositeAlarm": "an Aodh composite alarm",
    "OS::Aodh::EventAlarm": "an Aodh event alarm",
    "OS::Ceilometer::Alarm": "a Ceilometer alarm",
    "AWS::CloudWatch::Alarm": "a CloudWatch alarm",
}
UNSUPPORTED_HINT = ("cloudtmpl has no alarms: drop the alarm and run `cloudtmpl signal "
                    "STACK POLICY` where the alarm would have signalled the policy")
