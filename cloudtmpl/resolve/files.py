"""The files a template reads (``get_file``, template resources, ``OS::Heat::Stack``'s
``template: {get_file: ...}``), each read once per run (every file read is in
:attr:`ResolvedStack.files`).

A path is relative to the file that names it, as python-heatclient reads it: ``..``
may go up and an absolute path is taken as it is; URLs are refused.  Keys are POSIX
paths relative to the root template's directory: a nested template's ``base`` is its
own directory as such a key.  Where a path may lead is the reader's to refuse
(:mod:`cloudtmpl.sourcefiles`: the project directory and ``--allow-dir``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from cloudtmpl import limits
from cloudtmpl.diagnostics import Loc, error
from cloudtmpl.sourcefiles import ALLOW_DIR_FLAG, OutsideRoots


def file_path_problem(path: str) -> str | None:
    """Why no file may be read at ``path`` (None: it may be, if the reader allows it)."""
    if "://" in path or path.startswith("file:"):
        return "URLs are not allowed"
    if "\0" in path:
        return "a file name cannot hold a NUL character"
    if re.match(r"^[A-Za-z]:", path) or "\\" in path:
        return "Windows paths are not allowed (write a POSIX path with '/')"
    if posixpath.normpath(path) in (".", "/") or path.endswith("/"):
        return "the path names a directory, not a file"
    return None


def file_key(base: str, path: str) -> str:
    """The key of ``path`` named in a template whose directory is ``base``."""
    return posixpath.normpath(posixpath.join(base, path))


class Files:
    """The files one run has read (key -> text), read through ``read`` (None: no
    files can be read here); ``base`` is the current template's directory as a key."""

    def __init__(self, read: Callable[[str], str] | None, base: str = "") -> None:
        self.read = read
        self.base = base
        self.texts: dict[str, str] = {}

    def key(self, path: str) -> str:
        """The key of ``path`` as the current template names it (a URL unchanged)."""
        return path if file_path_problem(path) else file_key(self.base, path)

    def get(self, path: str, loc: Loc) -> str:
        """get_file's content: ``path`` relative to the current template's file."""
        return self.get_key(self.key(path), loc, path, "get_file")

    def get_key(self, key: str, loc: Loc, shown: str, what: str = "get_file") -> str:
        """The text of the file at ``key`` (``shown`` as the template wrote it)."""
        problem = file_path_problem(key)
        if problem is not None:
            raise error("file-path-refused", f"{what}: '{shown}': {problem}", loc,
                        "name a file by a path relative to the file naming it, such as "
                        "scripts/boot.sh or ../scripts/boot.sh")
        if key in self.texts:
            return self.texts[key]
        hint = "the path is relative to the directory of the file that names it"
        if self.read is None:
            raise error("file-not-found", f"{what}: cannot read '{shown}': no files can be "
                        "read here", loc, hint)
        try:
            text = self.read(key)
        except limits.FileRefused as exc:
            raise exc.diagnostic(loc, f"{what}: cannot read '{shown}'") from None
        except OutsideRoots as exc:
            roots = ", ".join(str(r) for r in exc.roots)
            raise error("file-outside-project",
                        f"{what}: '{shown}': {exc.strerror} (files may be read in {roots})",
                        loc, f"keep the file in the project directory, or allow its directory "
                        f"with {ALLOW_DIR_FLAG} DIR") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise error("file-not-found", f"{what}: cannot read '{shown}': {reason}", loc,
                        hint) from None
        self.texts[key] = text
        return text
