"""The resource types Heat documents (its resource registry: the ``resource_mapping()``
of every module under ``heat/engine/resources``), as data.

A template naming one of these that cloudtmpl does not provide gets
``unsupported-kind`` (the type is real, the targets cannot make it: the message names
them), not ``unknown-resource-type``, which stays for names Heat does not have (with
"did you mean").  What cloudtmpl provides is :mod:`cloudtmpl.resources` (its kinds and
their ``OS::*``/``AWS::*`` aliases); this list is everything Heat has, whatever
cloudtmpl provides.
"""

from __future__ import annotations

from collections.abc import Iterable

_BY_SERVICE: dict[str, tuple[str, ...]] = {
    "Aodh": ("Alarm", "CombinationAlarm", "CompositeAlarm", "EventAlarm",
             "GnocchiAggregationByMetricsAlarm", "GnocchiAggregationByResourcesAlarm",
             "GnocchiResourcesAlarm", "LBMemberHealthAlarm", "PrometheusAlarm"),
    "Barbican": ("CertificateContainer", "GenericContainer", "Order", "RSAContainer",
                 "Secret"),
    "Blazar": ("Host", "Lease"),
    "Cinder": ("EncryptedVolumeType", "QoSAssociation", "QoSSpecs", "Quota", "Volume",
               "VolumeAttachment", "VolumeType"),
    "Designate": ("Domain", "Record", "RecordSet", "Zone"),
    "Glance": ("Image", "WebImage"),
    "Heat": ("AccessPolicy", "AutoScalingGroup", "CloudConfig", "DeployedServer",
             "HARestarter", "InstanceGroup", "MultipartMime", "None", "RandomString",
             "ResourceChain", "ResourceGroup", "ScalingPolicy", "SoftwareComponent",
             "SoftwareConfig", "SoftwareDeployment", "SoftwareDeploymentGroup",
             "SoftwareDeployments", "Stack", "StructuredConfig", "StructuredDeployment",
             "StructuredDeploymentGroup", "StructuredDeployments", "SwiftSignal",
             "SwiftSignalHandle", "TestResource", "UpdateWaitConditionHandle", "Value",
             "WaitCondition", "WaitConditionHandle"),
    "Ironic": ("Port",),
    "Keystone": ("Domain", "Endpoint", "Group", "GroupRoleAssignment", "Project", "Region",
                 "Role", "Service", "User", "UserRoleAssignment"),
    "Magnum": ("Bay", "BayModel", "Cluster", "ClusterTemplate"),
    "Manila": ("SecurityService", "Share", "ShareNetwork", "ShareType"),
    "Mistral": ("CronTrigger", "ExternalResource", "Workflow"),
    "Monasca": ("AlarmDefinition", "Notification"),
    "Neutron": ("AddressScope", "ExtraRoute", "ExtraRouteSet", "Firewall", "FirewallPolicy",
                "FirewallRule", "FloatingIP", "FloatingIPAssociation",
                "FloatingIPPortForward", "FlowClassifier", "HealthMonitor", "IKEPolicy",
                "IPsecPolicy", "IPsecSiteConnection", "L2Gateway", "L2GatewayConnection",
                "LBaaS::HealthMonitor", "LBaaS::L7Policy", "LBaaS::L7Rule",
                "LBaaS::Listener", "LBaaS::LoadBalancer", "LBaaS::Pool",
                "LBaaS::PoolMember", "LoadBalancer", "MeteringLabel", "MeteringRule", "Net",
                "NetworkGateway", "Pool", "PoolMember", "Port", "PortChain", "PortPair",
                "PortPairGroup", "ProviderNet", "QoSBandwidthLimitRule",
                "QoSDscpMarkingRule", "QoSMinimumBandwidthRule",
                "QoSMinimumPacketRateRule", "QoSPolicy", "Quota", "RBACPolicy", "Router",
                "RouterGateway", "RouterInterface", "SecurityGroup", "SecurityGroupRule",
                "Segment", "Subnet", "SubnetPool", "TaaS::TapFlow", "TaaS::TapService",
                "Trunk", "VPNService"),
    "Nova": ("Flavor", "FloatingIP", "FloatingIPAssociation", "HostAggregate", "KeyPair",
             "Quota", "Server", "ServerGroup"),
    "Octavia": ("Flavor", "FlavorProfile", "HealthMonitor", "L7Policy", "L7Rule",
                "Listener", "LoadBalancer", "Pool", "PoolMember", "Quota"),
    "Sahara": ("Cluster", "ClusterTemplate", "DataSource", "ImageRegistry", "Job",
               "JobBinary", "NodeGroupTemplate"),
    "Senlin": ("Cluster", "Node", "Policy", "Profile", "Receiver"),
    "Swift": ("Container",),
    "Trove": ("Cluster", "Instance"),
    "Vitrage": ("Template",),
    "Zaqar": ("MistralTrigger", "Queue", "SignedQueueURL", "Subscription"),
    "Zun": ("Container",),
}
# Heat's CloudFormation-compatible types
_AWS: tuple[str, ...] = (
    "AutoScaling::AutoScalingGroup", "AutoScaling::LaunchConfiguration",
    "AutoScaling::ScalingPolicy", "CloudFormation::Stack", "CloudFormation::WaitCondition",
    "CloudFormation::WaitConditionHandle", "CloudWatch::Alarm", "EC2::EIP",
    "EC2::EIPAssociation", "EC2::Instance", "EC2::InternetGateway", "EC2::NetworkInterface",
    "EC2::RouteTable", "EC2::SecurityGroup", "EC2::Subnet",
    "EC2::SubnetRouteTableAssociation", "EC2::VPC", "EC2::VPCGatewayAttachment",
    "EC2::Volume", "EC2::VolumeAttachment", "ElasticLoadBalancing::LoadBalancer",
    "IAM::AccessKey", "IAM::User", "RDS::DBInstance", "S3::Bucket",
)

#: Every type name Heat documents.
DOCUMENTED: frozenset[str] = frozenset(
    [f"OS::{service}::{name}" for service, names in _BY_SERVICE.items() for name in names]
    + [f"AWS::{name}" for name in _AWS])


def documented(type_name: str) -> bool:
    """Whether Heat documents ``type_name``."""
    return type_name in DOCUMENTED


def unsupported(type_name: str, targets: Iterable[str]) -> tuple[str, str] | None:
    """(the message's end, the hint) for a type Heat documents that cloudtmpl does not
    provide, naming ``targets`` (the stack's candidates); None for a name Heat does not
    have."""
    if type_name not in DOCUMENTED:
        return None
    named = sorted(set(targets))
    where = ("target " + ", ".join(repr(t) for t in named)) if named else "any target"
    service = type_name.split("::")[1]
    return (f"is a Heat type ({service}) that cloudtmpl cannot create on {where}",
            "cloudtmpl does not provide it on any cloud yet: manage it outside the stack "
            "and pass its id in as a parameter, or leave it out")
