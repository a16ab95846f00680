"""The evaluation budget: how much one run may read, build and expand.

Every limit is checked *before* the work it bounds is done (a value is measured
before it is built, a group's count before its members are expanded, a file's
size before it is read), so hostile input is refused with bounded time and
memory, as a diagnostic located where the limit was crossed:

* ``limit-exceeded`` -- a value, the run's total, the resources, the nesting;
* ``template-cycle`` -- a nested template that includes itself, directly or not;
* ``input-too-large`` / ``not-a-regular-file`` -- a file (see :func:`read_bytes`).

The run-wide counts live in a :class:`Budget` that :func:`budget` makes current
for one resolve (nested templates share their parent's).  Inside a budget the
first limit crossed stops the whole evaluation (:class:`LimitExceeded` is not a
:class:`DiagnosticError`, so nothing on the way swallows it and keeps working);
the budget turns it into the run's one diagnostic.  Outside a budget (plan and
apply evaluating functions again) a value over the limit is an ordinary
diagnostic of the function that would have built it.

The numbers (:data:`LIMITS`) and why they are what they are: README.md, "Limits".
"""

from __future__ import annotations

import contextvars
import errno
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cloudtmpl.diagnostics import Diagnostic, DiagnosticError, Loc

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The numbers (documented in README.md, "Limits")."""

    file_bytes: int = 10 * MiB  # one file: template, environment, nested template, get_file,
    #                             -p @FILE, cloudtmpl.yaml
    plan_file_bytes: int = 32 * MiB  # a saved plan (it carries the template and its files)
    yaml_depth: int = 100  # nested YAML collections in one file
    yaml_nodes: int = 500_000  # YAML values in one file, aliases expanded
    value_bytes: int = 1 * MiB  # one function result, property or output value, as JSON
    total_value_bytes: int = 64 * MiB  # every value one run computes, together
    total_nodes: int = 1_000_000  # values of the definitions once groups and nested
    #                               templates are expanded, and references to them
    resources: int = 10_000  # resources once groups and nested templates are expanded
    nesting_depth: int = 5  # template resources inside template resources (Heat's
    #                         max_nested_stack_depth)


LIMITS = Limits()


def size_text(n: int) -> str:
    """``1 MiB``, ``64 MiB``, ``512 KiB`` or ``1,234 bytes``."""
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n:,} bytes"


# --------------------------------------------------------------------------- refusals


class LimitExceeded(Exception):
    """A limit crossed inside a budget: stops the run; the budget reports it."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


def exceeded(code: str, message: str, loc: Loc, hint: str) -> Exception:
    """The exception to raise for a crossed limit: :class:`LimitExceeded` inside a
    budget (the run stops), else a plain :class:`DiagnosticError`."""
    diag = Diagnostic(code, message, loc, hint)
    if _CURRENT.get() is not None:
        return LimitExceeded(diag)
    return DiagnosticError([diag])


def _hint(limit: str, value: str, advice: str) -> str:
    return f"the limit '{limit}' is {value} (README.md, Limits); {advice}"


# --------------------------------------------------------------------------- measuring


def measure(value: Any, cap: int) -> tuple[int, int]:
    """The size of ``value`` written as JSON (strings in UTF-8) and its number of values
    (items, keys, scalars), counted only up to just past ``cap`` bytes: at most
    ``cap`` steps however large (or shared) the value is.

    Unevaluated function nodes count as their arguments.
    """
    total = nodes = 0
    todo = [value]
    while todo and total <= cap:
        item = todo.pop()
        nodes += 1
        if isinstance(item, str):
            total += (len(item) if item.isascii() else len(item.encode())) + 2
        elif isinstance(item, Mapping):
            total += 2 + 2 * len(item)
            if total <= cap:
                for key, sub in item.items():
                    todo.append(key)
                    todo.append(sub)
        elif isinstance(item, (list, tuple)):
            total += 2 + len(item)
            if total <= cap:
                todo.extend(item)
        elif hasattr(item, "args") and isinstance(item.args, tuple):  # a Function node
            total += 16
            todo.extend(item.args)
        else:
            total += 8  # a number, true/false, null, "known after apply"
    return total, nodes


def count_nodes(value: Any, cap: int) -> int:
    """The number of values in ``value`` (each item, key and scalar), up to just past ``cap``."""
    total = 0
    todo = [value]
    while todo and total <= cap:
        item = todo.pop()
        total += 1
        if isinstance(item, Mapping):
            total += len(item)
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
        elif hasattr(item, "args") and isinstance(item.args, tuple):
            todo.extend(item.args)
    return total


# --------------------------------------------------------------------------- the budget


@dataclass
class Budget:
    """What one run has used so far (mutable; one per resolve, shared by its nested ones)."""

    limits: Limits = LIMITS
    value_bytes: int = 0
    nodes: int = 0
    resources: int = 0
    chain: list[tuple[str, Loc]] = field(default_factory=list)  # nested templates open


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "cloudtmpl_budget", default=None)


def current_limits() -> Limits:
    found = _CURRENT.get()
    return found.limits if found is not None else LIMITS


@contextmanager
def budget(root: str | None = None, limits: Limits = LIMITS) -> Iterator[Budget]:
    """Make a fresh budget current (or keep the one already current, for a nested
    resolve).  A limit crossed inside it ends as a :class:`DiagnosticError`."""
    found = _CURRENT.get()
    if found is not None:
        yield found
        return
    fresh = Budget(limits)
    if root is not None:
        fresh.chain.append((posixpath.normpath(root), Loc(root)))
    token = _CURRENT.set(fresh)
    try:
        yield fresh
    except LimitExceeded as exc:
        raise DiagnosticError([exc.diagnostic]) from None
    finally:
        _CURRENT.reset(token)


def check_value(value: Any, loc: Loc, what: str) -> Any:
    """``value`` if it is within the value limit; counted in the run's totals."""
    size, nodes = measure(value, current_limits().value_bytes)
    charge(size, nodes, loc, what)
    return value


def within(size: int, loc: Loc, what: str) -> None:
    """A value of ``size`` bytes (JSON) is being built: refused over the value limit."""
    cap = current_limits().value_bytes
    if size > cap:
        raise exceeded(
            "limit-exceeded",
            f"{what} would be more than {size_text(cap)} (at least {size:,} bytes as JSON)",
            loc, _hint("value size", size_text(cap),
                       "no property or output needs a value this large (is the template "
                       "generated or hostile?); split the value or read it on the server"))


def _refuse_over(used: int, cap: int, shown: str, loc: Loc, what: str, message: str,
                 limit: str, advice: str) -> None:
    """The run's ``used`` total went past its ``cap``: a limit-exceeded diagnostic
    (``message`` names ``{what}`` and ``{cap}``, ``shown`` the cap's form, formatted
    only then: this runs for every value built)."""
    if used > cap:
        text = format(cap, shown) if shown else size_text(cap)
        raise exceeded("limit-exceeded", message.format(what=what, cap=text), loc,
                       _hint(limit, text, advice))


def charge(size: int, nodes: int, loc: Loc, what: str) -> None:
    """A value of ``size`` bytes and ``nodes`` values was built: :func:`within`, and
    counted in the run's totals (every function result, property and output value)."""
    within(size, loc, what)
    found = _CURRENT.get()
    if found is None:
        return
    found.value_bytes += size
    _refuse_over(found.value_bytes, found.limits.total_value_bytes, "", loc, what,
                 "{what}: the values this run computed add up to more than {cap}",
                 "total value size",
                 "the template computes far more data than any stack needs (large "
                 "values repeated in many resources or group members)")
    charge_nodes(nodes, loc, what)


def charge_nodes(n: int, loc: Loc, what: str) -> None:
    """``n`` more values once expanded (group members' definitions, nested templates,
    references to a group's members)."""
    found = _CURRENT.get()
    if found is not None:
        found.nodes += n
        _refuse_over(found.nodes, found.limits.total_nodes, ",", loc, what,
                     "{what}: the stack expands to more than {cap} values", "total nodes",
                     "use smaller groups, fewer nested templates or fewer references "
                     "to whole groups")


def remaining_nodes() -> int:
    found = _CURRENT.get()
    return LIMITS.total_nodes if found is None else found.limits.total_nodes - found.nodes


def expect_resources(n: int, loc: Loc, what: str) -> None:
    """``n`` more resources are about to be made (a group's members): room for them?"""
    found = _CURRENT.get()
    if found is not None and found.resources + n > found.limits.resources:
        charge_resources(n, loc, what)


def charge_resources(n: int, loc: Loc, what: str) -> None:
    """``n`` more resources in the flattened stack."""
    found = _CURRENT.get()
    if found is not None:
        found.resources += n
        _refuse_over(found.resources, found.limits.resources, ",", loc, what,
                     "{what}: the stack would have more than {cap} resources once its "
                     "groups and nested templates are expanded", "resources",
                     "lower the group counts, or split the stack into several stacks")


@contextmanager
def nested(file: str, loc: Loc) -> Iterator[None]:
    """A nested template ``file`` is resolved inside the current one (from ``loc``):
    refused if it is already open (a cycle) or nests too deep."""
    found = _CURRENT.get()
    if found is None:
        yield
        return
    key = posixpath.normpath(file)
    names = [name for name, _ in found.chain]
    if key in names:
        cycle = [*names[names.index(key):], key]
        raise exceeded(
            "template-cycle",
            "nested templates include each other in a cycle: " + " -> ".join(cycle), loc,
            "a template must not be a resource of itself, directly or through other "
            "templates; give the innermost one a plain resource type")
    depth = len(found.chain)  # the root is at depth 0
    if depth > found.limits.nesting_depth:
        raise exceeded(
            "limit-exceeded",
            f"nested template {file} would be at nesting depth {depth} (more than "
            f"{found.limits.nesting_depth})", loc,
            _hint("nesting depth", str(found.limits.nesting_depth),
                  "flatten the templates: " + " -> ".join([*names, key])))
    found.chain.append((key, loc))
    try:
        yield
    finally:
        found.chain.pop()


# --------------------------------------------------------------------------- files


class FileRefused(Exception):
    """A file cloudtmpl does not read: not a regular file, or larger than its limit."""

    def __init__(self, code: str, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.code = code  # not-a-regular-file | input-too-large
        self.reason = reason  # e.g. "it is a FIFO (named pipe), not a regular file"
        self.hint = hint

    def diagnostic(self, loc: Loc, what: str) -> DiagnosticError:
        return DiagnosticError([Diagnostic(self.code, f"{what}: {self.reason}", loc, self.hint)])


def too_large_hint(cap: int, limit: str = "file size") -> str:
    advice = ("a plan file this large was not written by cloudtmpl" if limit == "plan file size"
              else "a file this large is generated or hostile: split it (nested templates, "
              "several files)")
    return _hint(limit, size_text(cap), advice)


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def read_prefix(path: str | os.PathLike[str], cap: int) -> bytes:
    """The first ``cap + 1`` bytes of the regular file ``path`` (more than ``cap``: the
    file is over the limit).

    Opened without blocking (a FIFO with no writer would hang ``open``) and checked
    with ``fstat`` before anything is read: a directory, FIFO, device or socket is
    refused (``/dev/zero`` never ends); a directory is ``IsADirectoryError``, as
    ``open`` says.  ``OSError`` (missing, permissions) propagates.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise FileRefused("not-a-regular-file", f"it is {kind}, not a regular file",
                              "give the path of a regular file (cloudtmpl does not read "
                              "pipes, devices or directories)")
        chunks: list[bytes] = []
        left = cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_bytes(path: str | os.PathLike[str], cap: int, limit: str = "file size") -> bytes:
    """The content of the regular file ``path`` (:func:`read_prefix`); a file over
    ``cap`` bytes (the limit named ``limit``) is refused (``input-too-large``) after
    reading ``cap + 1`` bytes."""
    data = read_prefix(path, cap)
    if len(data) > cap:
        raise FileRefused("input-too-large", f"the file is larger than {size_text(cap)}; "
                          "cloudtmpl reads no further", too_large_hint(cap, limit))
    return data


def read_text(path: str | os.PathLike[str], cap: int, limit: str = "file size") -> str:
    """:func:`read_bytes` decoded as UTF-8 (``UnicodeDecodeError`` propagates)."""
    return read_bytes(path, cap, limit).decode("utf-8")
