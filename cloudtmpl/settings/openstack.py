"""``clouds.yaml`` and ``secure.yaml`` as openstacksdk finds and merges them.

Search path (each directory with the suffixes ``.yaml``, ``.yml`` and ``.json``):
the current directory, ``$XDG_CONFIG_HOME/openstack`` (when set),
``~/.config/openstack``, ``/etc/openstack``.

* ``clouds.*``: ``OS_CLIENT_CONFIG_FILE`` first; a cloud comes from the first file
  that names it.
* ``secure.*``: ``OS_CLIENT_SECURE_FILE`` first, then ``secure.*`` in the same
  directories; the first that exists is merged over the clouds file (nested
  mappings merged key by key, as openstacksdk's ``merge_clouds``), wherever the
  clouds file was found - so the secrets can live in ``~/.config/openstack``
  while ``clouds.yaml`` sits in the project.

An entry's keys are normalised as openstacksdk does (``region-name`` is ``region_name``).
``auth_type`` (keystoneauth's plugin name, default ``password``) is one of
:data:`AUTH_TYPES`: ``password``/``v3password``, ``v3applicationcredential``,
``token``/``v3token``.

The default region of a target without ``region:`` (:func:`default_region`):
``OS_REGION_NAME`` (what ``openstack --os-region-name`` defaults to), else the
entry's first ``regions`` item, else its ``region_name``.  An ``OS_REGION_NAME``
that the entry's region list does not hold is an error (openstacksdk's rule).

Pure apart from reading those files; no secret leaves this module in a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cloudtmpl.settings import SettingsError

SUFFIXES = (".yaml", ".yml", ".json")
# keystoneauth plugin names (clouds.yaml ``auth_type``, OS_AUTH_TYPE) -> Keystone v3 method
AUTH_TYPES = {
    "password": "password",
    "v3password": "password",
    "v3applicationcredential": "application_credential",
    "token": "token",
    "v3token": "token",
}


class CloudsYamlError(SettingsError):
    """A clouds/secure file that cannot be read, or a region the entry does not offer."""


@dataclass(frozen=True)
class CloudEntry:
    """One ``clouds:`` entry, with ``secure.yaml`` merged in (holds secrets: repr hides it)."""

    name: str
    config: Mapping[str, Any] = field(repr=False)
    file: Path
    secure_file: Path | None = None

    @property
    def source(self) -> str:
        return str(self.file) + (f" + {self.secure_file}" if self.secure_file else "")


def search_dirs(environ: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    dirs = [cwd]
    if environ.get("XDG_CONFIG_HOME"):
        dirs.append(Path(environ["XDG_CONFIG_HOME"]).expanduser() / "openstack")
    dirs += [home / ".config" / "openstack", Path("/etc/openstack")]
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _paths(stem: str, override: str | None, environ: Mapping[str, str], cwd: Path,
           home: Path) -> list[Path]:
    out = [Path(override).expanduser()] if override else []
    out += [d / (stem + s) for d in search_dirs(environ, cwd, home) for s in SUFFIXES]
    return out


def clouds_yaml_paths(environ: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """Where ``clouds.*`` is looked for, in order."""
    return _paths("clouds", environ.get("OS_CLIENT_CONFIG_FILE"), environ, cwd, home)


def secure_yaml_paths(environ: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """Where ``secure.*`` is looked for, in order."""
    return _paths("secure", environ.get("OS_CLIENT_SECURE_FILE"), environ, cwd, home)


def searched(environ: Mapping[str, str], cwd: Path, home: Path) -> str:
    """The clouds search path for a message (one ``.yaml`` per directory)."""
    paths = [p for p in clouds_yaml_paths(environ, cwd, home) if p.suffix == ".yaml"]
    if environ.get("OS_CLIENT_CONFIG_FILE"):
        first = Path(environ["OS_CLIENT_CONFIG_FILE"]).expanduser()
        paths = [first, *[p for p in paths if p != first]]
    return ", ".join(str(p) for p in paths) + " (also .yml and .json)"


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        # the parser's message quotes at most a line of the file: never a whole secret file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CloudsYamlError(f"cannot read {path}: {reason}") from None
    return data if isinstance(data, dict) else {}


def normalize(value: Any) -> Any:
    """openstacksdk's ``normalize_keys``: ``-`` in keys becomes ``_``, recursively."""
    if isinstance(value, Mapping):
        return {str(k).replace("-", "_"): normalize(v) for k, v in value.items()}
    return value


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """openstacksdk's ``merge_clouds``: nested mappings merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _first(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def find_cloud(cloud: str, environ: Mapping[str, str], cwd: Path,
               home: Path) -> CloudEntry | None:
    """The entry ``cloud`` from the first clouds file naming it, ``secure.*`` merged in."""
    secure_path = _first(secure_yaml_paths(environ, cwd, home))
    secure = _read(secure_path) if secure_path is not None else {}
    for path in clouds_yaml_paths(environ, cwd, home):
        if not path.is_file():
            continue
        clouds = _read(path).get("clouds") or {}
        if not isinstance(clouds, Mapping) or cloud not in clouds:
            continue
        entry = normalize(clouds[cloud]) if isinstance(clouds[cloud], Mapping) else {}
        secure_clouds = secure.get("clouds")
        extra = secure_clouds.get(cloud) if isinstance(secure_clouds, Mapping) else None
        if isinstance(extra, Mapping):
            return CloudEntry(cloud, merge(entry, normalize(extra)), path, secure_path)
        return CloudEntry(cloud, entry, path)
    return None


def auth_method(auth_type: Any, where: str) -> str:
    """The Keystone method of a keystoneauth ``auth_type`` (default ``password``)."""
    name = str(auth_type or "password").strip().lower().replace("-", "_")
    if name not in AUTH_TYPES:
        raise CloudsYamlError(
            f"{where} has auth_type {auth_type!r}, which cloudtmpl does not support "
            f"(supported: {', '.join(AUTH_TYPES)})")
    return AUTH_TYPES[name]


def entry_regions(config: Mapping[str, Any]) -> list[str]:
    """The regions an entry names: ``regions`` (names or ``{name: …}``), else ``region_name``."""
    regions = config.get("regions")
    if isinstance(regions, list) and regions:
        out = []
        for item in regions:
            name = item.get("name") if isinstance(item, Mapping) else item
            if name:
                out.append(str(name))
        return out
    name = config.get("region_name")
    if isinstance(name, list):
        return [str(n) for n in name if n]
    if name:
        return [n.strip() for n in str(name).split(",") if n.strip()]
    return []


def default_region(entry: CloudEntry | None,
                   environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(region, where it came from) for a target without ``region:``."""
    known = entry_regions(entry.config) if entry is not None else []
    chosen = (environ.get("OS_REGION_NAME") or "").strip()
    if chosen:
        if entry is not None and known and chosen not in known:
            raise CloudsYamlError(
                f"OS_REGION_NAME={chosen} is not a region of cloud {entry.name!r} in "
                f"{entry.file} (its regions: {', '.join(known)})")
        return chosen, "OS_REGION_NAME"
    if known:
        assert entry is not None
        return known[0], f"cloud {entry.name!r} in {entry.file}"
    return None, None
