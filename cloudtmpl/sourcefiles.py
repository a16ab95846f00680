"""Where the files a template names may be read from, and the reader that reads them.

As python-heatclient reads them: a ``get_file``, a template resource's file or an
environment's ``resource_registry`` entry is relative to the file that names it, may
go up (``../``) and may be absolute.  Unlike heatclient, reads are confined to the
**roots**: the project directory (the one of ``cloudtmpl.yaml``, or the current
directory without one), the template's own directory, and each ``--allow-dir``.  A
path leaving them, or a symbolic link that resolves outside them, is refused with
:class:`OutsideRoots` before anything is read.

The reader's keys are POSIX paths relative to the root template's directory (or
absolute); :func:`source_key` is the same file as the plan file's snapshot keys it.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudtmpl import limits
from cloudtmpl.shipped import data_dir

ALLOW_DIR_FLAG = "--allow-dir"


class OutsideRoots(OSError):
    """A path, or the target of a symbolic link on it, is outside every root."""

    def __init__(self, path: str, roots: Sequence[Path], link: bool) -> None:
        what = "a symbolic link on it leads" if link else "it is"
        super().__init__(errno.EACCES, f"{what} outside the project directory")
        self.path = path
        self.roots = tuple(roots)
        self.link = link


@dataclass(frozen=True)
class Roots:
    """The directories files may be read from, absolute (not resolved: a root may be
    reached through a link; what a path resolves to is checked against the resolved
    roots)."""

    dirs: tuple[Path, ...]

    def lexical(self, path: Path) -> bool:
        """``path`` (absolute, normalized) is inside a root as written."""
        return any(_inside(path, root) for root in self.dirs)

    def resolved(self, path: Path) -> bool:
        """``path`` (resolved) is inside a root's resolved directory."""
        return any(_inside(path, Path(os.path.realpath(root))) for root in self.dirs)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def allowed_roots(project_dir: Path | str, template: str | None,
                  allow_dirs: Iterable[str] = ()) -> Roots:
    """The roots of one command: the project directory, the template's directory (what
    the user named) and the directories of ``--allow-dir``."""
    dirs = [Path(os.path.abspath(project_dir))]
    if template:
        dirs.append(Path(os.path.abspath(os.path.dirname(template) or ".")))
    dirs += [Path(os.path.abspath(d)) for d in allow_dirs]
    return Roots(tuple(dict.fromkeys(dirs)))


def source_key(template: str, relative: str) -> str:
    """The file the reader's key ``relative`` names, as the plan file's snapshot keys it:
    joined to the template's directory, normalized."""
    return posixpath.normpath(posixpath.join(Path(template).parent.as_posix(), relative))


def file_reader(template: str, sources: Mapping[str, str],
                roots: Roots | None = None) -> Callable[[str], str]:
    """The reader of files a template names: ``key`` relative to the template's
    directory (or absolute), never outside ``roots`` (default: the template's own
    directory).

    ``templates/<file>`` that does not exist next to the template is read from the
    library templates shipped with cloudtmpl (``templates/`` in the wheel), so a
    project can use ``type: templates/web_tier.yaml`` without copying it; that
    directory confines such paths as the roots confine the rest.  A saved plan
    carries what was read (``sources``), so applying it reads from the plan, not the
    work tree.
    """
    roots = roots or allowed_roots(os.path.dirname(template) or ".", None)

    def read(key: str) -> str:
        name = source_key(template, key)
        if name in sources:
            return sources[name]
        path = Path(os.path.abspath(name))
        if not roots.lexical(path):
            raise OutsideRoots(key, roots.dirs, link=False)
        try:
            real = path.resolve()
        except RuntimeError:  # pathlib's word for a symbolic link loop
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
        if not roots.resolved(real):
            raise OutsideRoots(key, roots.dirs, link=True)
        if not real.exists():
            shipped = library_file(key)
            if shipped is not None:
                return limits.read_text(shipped, limits.LIMITS.file_bytes)
        return limits.read_text(real, limits.LIMITS.file_bytes)

    return read


def library_file(relative: str) -> Path | None:
    """The shipped library template ``relative`` (``templates/<file>``) names, if any."""
    head, sep, rest = relative.partition("/")
    if head != "templates" or not sep or not rest:
        return None
    try:
        library = data_dir("templates").resolve()
    except FileNotFoundError:
        return None
    path = (library / rest).resolve()
    return path if path.is_relative_to(library) and path.is_file() else None
