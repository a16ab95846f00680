"""Choices before discovery on AWS: flavors, images and key pairs a template names.

* flavor: libcloud's built-in instance type data (no request); offered: every type;
* image: one ``DescribeImages`` by id, or by name when it is not an ``ami-`` id (the
  newest match, as :func:`find_image`); never listed (thousands of public images):
  offered is empty;
* network (a floating IP's external network): AWS has one address pool per region,
  so any value is accepted as it is (no request);
* keypair: one ``DescribeKeyPairs`` by name (a second lists the names when missing).
"""

from __future__ import annotations

from cloudtmpl.catalog import ImageFilter, newest_image
from cloudtmpl.providers.aws import ec2
from cloudtmpl.providers.aws.client import AwsClient
from cloudtmpl.providers.aws.keys import get_key_pair
from cloudtmpl.providers.base import Choice, CloudError


def lookup_choice(client: AwsClient, region: str, what: str, value: str) -> Choice:
    """A flavor, image or key pair in the form discovery reports it (one request at most)."""
    if what == "flavor":
        names = sorted({str(size.id) for size in client.driver(region).list_sizes()})
        return Choice(value) if value in names else Choice(None, tuple(names))
    if what == "image" and not value.startswith("ami-"):
        return find_image(client, region, ImageFilter(value))
    if what == "image":
        try:
            obj = client.ec2(region, "DescribeImages", {"ImageId.1": value})
        except CloudError as err:
            if ec2.has_code(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed",
                            "InvalidAMIID.Unavailable"):
                return Choice(None)
            raise
        found = ec2.items(obj, "imagesSet/item")
        return Choice(ec2.text(found[0], "imageId") if found else None)
    if what == "keypair":
        if get_key_pair(client, region, value) is not None:
            return Choice(value)
        obj = client.ec2(region, "DescribeKeyPairs", {})
        return Choice(None, tuple(sorted(ec2.text(el, "keyName") or ""
                                         for el in ec2.items(obj, "keySet/item"))))
    return Choice(value)  # nothing to check


def find_image(client: AwsClient, region: str, flt: ImageFilter) -> Choice:
    """The newest available image ``flt`` matches: one DescribeImages with the owners
    (``Owner.N``) and the name and state filters, as Terraform's ``aws_ami`` with
    ``most_recent``; what comes back is matched again (a compatible cloud may ignore a
    filter)."""
    params = {f"Owner.{i}": owner for i, owner in enumerate(flt.owners, 1)}
    obj = client.ec2(region, "DescribeImages",
                     {**params, **ec2.filters({"name": flt.name, "state": "available"})})
    return Choice(newest_image(flt, [
        {"id": ec2.text(el, "imageId") or "", "name": ec2.text(el, "name") or "",
         "owner_id": ec2.text(el, "imageOwnerId") or "",
         "owner_alias": ec2.text(el, "imageOwnerAlias") or "",
         "created": ec2.text(el, "creationDate") or ""}
        for el in ec2.items(obj, "imagesSet/item")]))
