"""Helpers for driving the real ``cloudtmpl`` CLI, and boto3 to look inside.

:func:`invoke` runs a command in this process (``cloudtmpl.cli.run`` with an
:class:`~cloudtmpl.cliio.Io` of its own: captured output, no terminal, the
environment of :func:`cli_env`); :func:`run` runs it in a subprocess, for what needs
a real process (signals, a killed run, a terminal, the installed entry point, a lock
held by another process).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from libcloud.compute.providers import Provider, get_driver

from cloudtmpl import cli
from cloudtmpl.cliio import Io

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart" / "quickstart.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_"))}
    # AWS_EC2_METADATA_DISABLED: botocore's credential chain never asks 169.254.169.254
    env.update({"CI": "true", "PYTHONPATH": str(REPO), "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(extra or {})
    return env


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "cloudtmpl.cli", *args]


def run(cwd: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> Result:
    proc = subprocess.run(
        cli_args(*args),
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def invoke(cwd: Path, *args: str, env: dict[str, str] | None = None,
           environ: dict[str, str] | None = None) -> Result:
    """``cloudtmpl ARGS`` run in this process, as :func:`run` runs it in a subprocess:
    in ``cwd``, with :func:`cli_env` (``env`` added; ``environ``: this environment
    instead), an empty stdin and captured stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    variables = cli_env(env) if environ is None else environ
    code = cli.run(list(args), Io(io.StringIO(""), out, err, variables, Path(cwd)))
    return Result(code, out.getvalue(), err.getvalue())


def ec2(sandbox: dict[str, Any], region: str) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=sandbox["endpoint"],
        region_name=region,
        aws_access_key_id=sandbox["access_key"],
        aws_secret_access_key=sandbox["secret_key"],
    )


def stack_instances(sandbox: dict[str, Any], region: str, stack: str) -> list[dict[str, Any]]:
    """Instances tagged for ``stack`` that are not terminated (looked up with boto3)."""
    client = ec2(sandbox, region)
    out = []
    for page in client.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:cloudtmpl:stack", "Values": [stack]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    ):
        for reservation in page["Reservations"]:
            out.extend(reservation["Instances"])
    return out


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def edit(text: str, replacements: Sequence[tuple[str, str]]) -> str:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def os_driver(sandbox: dict[str, Any], region: str) -> Any:
    """libcloud's OpenStack driver on the sandbox: to look inside independently."""
    cls = get_driver(Provider.OPENSTACK)
    return cls(
        sandbox["username"],
        sandbox["password"],
        ex_force_auth_url=sandbox["auth_url"],
        ex_force_auth_version="3.x_password",
        ex_tenant_name=sandbox["project_name"],
        ex_domain_name="Default",
        ex_force_service_region=region,
        api_version="2.2",
    )


def owned(items: list[Any], stack: str) -> list[Any]:
    return [
        i
        for i in items
        if (getattr(i, "name", "") or "").startswith(f"{stack}.")
        or (getattr(i, "extra", {}).get("metadata") or {}).get("cloudtmpl:stack") == stack
    ]
