"""The installed cloudtmpl's version, and the versions a bug report needs beside it."""

from __future__ import annotations

import platform
from importlib import metadata


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def version() -> str:
    """The version in the installed package's metadata (``unknown`` when not installed)."""
    return _installed("cloudtmpl") or "unknown"


def versions() -> dict[str, str | None]:
    """cloudtmpl's version, and Python's, the platform's and the libraries' that decide
    how it talks to clouds (botocore: AWS credentials; moto: the AWS sandbox; None when
    not installed)."""
    return {
        "version": version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libcloud": _installed("apache-libcloud"),
        "botocore": _installed("botocore"),
        "moto": _installed("moto"),
    }
