"""What ships: example and library templates validate, catalogs load, the wheel carries its data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cloudtmpl.catalog import ImageFilter, load_catalog
from cloudtmpl.config import SANDBOX_TARGETS
from cloudtmpl.loader import load_file
from cloudtmpl.model import default_stack_name
from cloudtmpl.resolve import ResolveOptions, resolve
from cloudtmpl.workflow import file_reader

REPO = Path(__file__).resolve().parents[2]
STACKS = ("quickstart", "multicloud", "residency", "services")  # examples/NAME/NAME.yaml
EXAMPLES = sorted([*(REPO / "examples" / name / f"{name}.yaml" for name in STACKS),
                   *REPO.glob("examples/heat/*.yaml")])
LIBRARY = sorted(REPO.glob("templates/*.yaml"))


@pytest.mark.parametrize("path", [*EXAMPLES, *LIBRARY], ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_templates_resolve(path: Path) -> None:
    mode = "validate" if path in LIBRARY else "plan"  # library templates take parameters
    stack = resolve(load_file(str(path)),
                    ResolveOptions(stack="t", mode=mode, target="sandbox-aws",
                                   targets=SANDBOX_TARGETS,
                                   read_file=file_reader(str(path), {})))
    assert stack.resources


def test_example_templates_are_stacks_of_their_own() -> None:
    """Every example applies as a stack of its own (once they were all `stack.yaml`, so
    applying one example deleted another's resources)."""
    templates = sorted(p for p in REPO.glob("examples/**/*.yaml") if p.name != "cloudtmpl.yaml")
    names = [default_stack_name(p.stem) for p in templates]
    assert len(templates) >= 8 and len(set(names)) == len(names), names
    assert "stack" not in names
    assert set(STACKS) <= set(names)


def test_catalogs() -> None:
    aws = load_catalog("aws")
    assert aws.regions["eu-central-1"].country == "DE"
    assert aws.regions["eu-central-1"].jurisdiction == "EU"
    assert aws.regions["eu-central-2"].jurisdiction == "CH"
    assert len(aws.regions) >= 30
    assert all(r.country and r.jurisdiction for r in aws.regions.values())
    sandbox = load_catalog("sandbox-aws")
    assert set(sandbox.regions) >= {"us-east-1", "eu-central-1"}
    assert sandbox.size("small") == "t3.small"
    # abstract images are filters the cloud resolves (no AMI ids pinned), the same
    # names on the sandbox and on real AWS, each naming its owner
    assert sandbox.image("ubuntu-22.04", "eu-central-1") == ImageFilter(
        "ubuntu/images/hvm-ssd*/ubuntu-xenial-16.04-amd64-server-*", ("099720109477",))
    assert aws.image("ubuntu-22.04", "eu-central-1") == ImageFilter(
        "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-amd64-server-*", ("099720109477",))
    assert set(sandbox.images) == set(aws.images) == {
        "ubuntu-22.04", "ubuntu-20.04", "amazon-linux-2023", "amazon-linux-2"}
    for catalog in (sandbox, aws):
        assert all(isinstance(e, ImageFilter) and e.owners for e in catalog.images.values())
    assert sandbox.image("ami-123", "eu-central-1") == "ami-123"  # native passes through


def test_wheel_ships_providers_and_templates(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d",
                    str(tmp_path)], cwd=REPO, check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cloudtmpl/_data/providers/aws.yaml" in names
    assert "cloudtmpl/_data/providers/sandbox-aws.yaml" in names
    assert "cloudtmpl/_data/templates/web_server.yaml" in names
    assert not any(n.startswith("providers/") for n in names)  # not an importable package
