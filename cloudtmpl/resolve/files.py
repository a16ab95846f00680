"""``get_file``: the files a template reads, only inside its own directory, each read
once per template (every file read is in :attr:`ResolvedStack.files`)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from cloudtmpl import limits
from cloudtmpl.diagnostics import Loc, error


def file_path_problem(path: str) -> str | None:
    """Why get_file may not read ``path`` (it must stay inside the template's directory)."""
    if "://" in path or path.startswith("file:"):
        return "URLs are not allowed"
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or "\\" in path:
        return "absolute paths are not allowed"
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        return "the path leaves the template's directory"
    if norm == ".":
        return "the path names a directory, not a file"
    return None


class Files:
    """The files one template has read (relative path -> text), read through ``read``
    (None: no files can be read here)."""

    def __init__(self, read: Callable[[str], str] | None) -> None:
        self.read = read
        self.texts: dict[str, str] = {}

    def get(self, path: str, loc: Loc) -> str:
        """get_file's content: ``path`` must stay inside the template's directory."""
        problem = file_path_problem(path)
        if problem is not None:
            raise error("file-outside-template", f"get_file: '{path}': {problem}", loc,
                        "get_file reads files in the template's directory tree; give a "
                        "relative path such as scripts/boot.sh")
        key = posixpath.normpath(path)
        if key in self.texts:
            return self.texts[key]
        hint = "the path is relative to the template's directory"
        if self.read is None:
            raise error("file-not-found", f"get_file: cannot read '{path}': no files can be "
                        "read here", loc, hint)
        try:
            text = self.read(key)
        except limits.FileRefused as exc:
            raise exc.diagnostic(loc, f"get_file: cannot read '{path}'") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise error("file-not-found", f"get_file: cannot read '{path}': {reason}", loc,
                        hint) from None
        self.texts[key] = text
        return text
