"""Hostile input: the loader refuses YAML bombs, deep nesting and huge files quickly.

Each refusal is a diagnostic (stable code, ``file:line:col``, hint), never a
crash, a hang or a memory blow-up.  The time and peak Python memory of every
refusal are printed (``pytest -s`` shows them; no timing is asserted, CI machines
vary).  The second half checks that a template cannot make cloudtmpl run a
command on this machine.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudtmpl import functions, resources
from cloudtmpl.diagnostics import Diagnostic, DiagnosticError
from cloudtmpl.loader import LIMITS, Limits, load_file, load_text

REPO = Path(__file__).resolve().parents[2]
HEAD = "heat_template_version: 2021-04-16\n"


def billion_laughs(levels: int = 10, fan: int = 9) -> str:
    lines = [HEAD, 'lol0: &lol0 ["lol"' + ', "lol"' * (fan - 1) + "]\n"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * fan) + "]\n")
    return "".join(lines)


def measured(fn: Callable[[], object], label: str) -> Diagnostic:
    """Run a refusal twice: timed, then under tracemalloc (peak memory); print both."""
    started = time.perf_counter()
    with pytest.raises(DiagnosticError):
        fn()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        with pytest.raises(DiagnosticError) as exc:
            fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (diag,) = exc.value.diagnostics
    print(f"\n[loader-limits] {label}: refused as {diag.code} at {diag.loc} in "
          f"{elapsed * 1000:.1f} ms, peak Python memory {peak / 1e6:.1f} MB")
    assert diag.hint, "every refusal says what to do"
    return diag


# ----------------------------------------------------------------------- YAML bombs


def test_billion_laughs_is_refused_before_it_expands() -> None:
    text = billion_laughs()  # 9**10 = 3.5 billion strings once expanded; 1 KB of text
    diag = measured(lambda: load_text(text, "bomb.yaml"), "billion laughs (9^10)")
    assert diag.code == "too-many-nodes"
    # stopped at the first alias that crosses the limit: in lol6 (9^7 = 4.8 million > 500k)
    assert (diag.loc.file, diag.loc.line) == ("bomb.yaml", 7)
    assert "alias" in diag.hint


def test_a_bomb_under_a_larger_document_is_refused_too() -> None:
    # over the 16 KiB line where every document gets the pre-pass, the bomb sits last
    filler = "".join(f"k{i}: value number {i}\n" for i in range(2000))
    text = HEAD + filler + billion_laughs()[len(HEAD):]
    diag = measured(lambda: load_text(text, "big.yaml"), "bomb after 2,000 lines")
    assert diag.code == "too-many-nodes" and diag.loc.line > 2000


def test_quadratic_blowup_is_counted_the_same_way() -> None:
    # one anchor of 1,000 items referenced 1,000 times: 1 million values from 8 KB
    text = HEAD + "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 1000) + "]\n"
    diag = measured(lambda: load_text(text, "quad.yaml"), "1,000 aliases of 1,000 items")
    assert diag.code == "too-many-nodes" and diag.loc.line == 3


def test_aliases_within_the_limit_still_work() -> None:
    doc = load_text(HEAD + "a: &a {x: 1}\nb: [*a, *a]\n", "ok.yaml")
    assert doc.data["b"] == [{"x": 1}, {"x": 1}]
    small = Limits(max_nodes=10)
    with pytest.raises(DiagnosticError) as exc:
        load_text(HEAD + "a: &a [1, 2, 3, 4]\nb: [*a, *a]\n", "ok.yaml", small)
    assert exc.value.diagnostics[0].code == "too-many-nodes"


def test_recursive_alias_is_a_diagnostic() -> None:
    diag = measured(lambda: load_text(HEAD + "a: &a [1, *a]\n", "rec.yaml"), "recursive alias")
    assert diag.code == "yaml-syntax" and "recursive" in diag.message


# ------------------------------------------------------------------------- nesting


@pytest.mark.parametrize(
    ("label", "text"),
    [
        ("flow [[[ 100,000 deep", "a: " + "[" * 100_000 + "]" * 100_000 + "\n"),
        ("flow {a: {a: 50,000 deep", "a: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n"),
        ("block '- - - ' 60,000 deep", "a:\n" + "- " * 60_000 + "x\n"),
        ("flow 150 deep (small text)", "a: " + "[" * 150 + "]" * 150 + "\n"),
    ],
    ids=["flow-list", "flow-map", "block-list", "small"],
)
def test_deep_nesting_is_refused_without_crashing(label: str, text: str) -> None:
    # libyaml's composer recurses in C: 100,000 levels used to kill the process (SIGSEGV)
    diag = measured(lambda: load_text(HEAD + text, "deep.yaml"), label)
    assert diag.code == "nesting-too-deep"
    assert diag.loc.line == (3 if label.startswith("block") else 2)
    assert diag.loc.column > 100


def test_deep_nesting_in_a_subprocess_exits_cleanly() -> None:
    """The crash it prevents is a segfault, which pytest itself would not survive."""
    code = ("import sys; from cloudtmpl.loader import load_text\n"
            "from cloudtmpl.diagnostics import DiagnosticError\n"
            "try:\n    load_text('a: ' + '[' * 1_000_000 + ']' * 1_000_000)\n"
            "except DiagnosticError as e:\n    print(e.diagnostics[0].code)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "nesting-too-deep"


def test_nesting_built_up_through_aliases_is_refused() -> None:
    # each line nests 60 deep (allowed), the alias puts one inside the other: 120
    text = HEAD + "a: &a " + "[" * 60 + "x" + "]" * 60 + "\nb: " + "[" * 60 + "*a" + "]" * 60
    diag = measured(lambda: load_text(text, "alias-deep.yaml"), "60 + 60 levels via an alias")
    assert diag.code == "nesting-too-deep"


def test_reasonable_nesting_loads() -> None:
    doc = load_text(HEAD + "a: " + "[" * 90 + "1" + "]" * 90 + "\n")
    value = doc.data["a"]
    for _ in range(89):
        value = value[0]
    assert value == [1]


# -------------------------------------------------------------------------- size


def test_huge_text_is_refused_before_parsing() -> None:
    text = HEAD + "a: [" + "1, " * 4_000_000 + "1]\n"  # 12 MB
    diag = measured(lambda: load_text(text, "huge.yaml"), "12 MB of text")
    assert diag.code == "input-too-large" and diag.loc.line == 2


def test_huge_file_is_not_read_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as fh:  # 64 MB on disk
        fh.write(HEAD + "a:\n")
        line = "  - " + "x" * 60 + "\n"
        fh.write(line * (64 * 1024 * 1024 // len(line)))
    diag = measured(lambda: load_file(str(path)), "64 MB file")
    assert diag.code == "input-too-large" and diag.loc.file == str(path)
    assert diag.loc.line > 1


def test_many_small_values_are_refused_with_bounded_memory() -> None:
    text = HEAD + "a: [" + "1," * 1_000_000 + "1]\n"  # 2 MB, a million values
    diag = measured(lambda: load_text(text, "wide.yaml"), "a million values in 2 MB")
    assert diag.code == "too-many-nodes"


def test_giant_integer_is_a_diagnostic_not_a_crash() -> None:
    diag = measured(lambda: load_text(HEAD + "a: " + "9" * 10_000 + "\n", "int.yaml"),
                    "an integer of 10,000 digits")
    assert diag.code == "yaml-syntax" and diag.loc.line == 2


def test_limits_are_generous_for_real_templates() -> None:
    assert LIMITS.max_bytes >= 10 * 1024 * 1024
    assert LIMITS.max_depth >= 50
    # 5,000 resources of ~20 values each fit five times over
    assert LIMITS.max_nodes >= 5 * 5_000 * 20
    big = HEAD + "resources:\n" + "".join(
        f"  s{i}:\n    type: Cloud::Compute::Server\n"
        f"    properties: {{image: ubuntu-22.04, flavor: tiny, metadata: {{n: '{i}'}}}}\n"
        for i in range(5_000))
    started = time.perf_counter()
    doc = load_text(big, "big.yaml")
    print(f"\n[loader-limits] 5,000-resource template ({len(big) / 1e6:.1f} MB) loaded in "
          f"{time.perf_counter() - started:.2f} s")
    assert len(doc.data["resources"]) == 5_000


# -------------------------------------------------- no local command from a template


_EXECUTING_MODULES = {"subprocess", "pty", "pickle", "marshal", "shelve", "ctypes",
                      "multiprocessing", "runpy", "code", "codeop"}
_EXECUTING_CALLS = {"system", "popen", "execv", "execve", "execl", "execlp", "execvp",
                    "execvpe", "spawnv", "spawnl", "spawnlp", "spawnvp", "posix_spawn",
                    "posix_spawnp", "startfile", "fork", "forkpty"}
_EXECUTING_BUILTINS = {"eval", "exec", "compile", "__import__", "breakpoint"}
# Everything a template's content reaches: loading, functions, resolving, types,
# composition, the local provider (random strings, values) and software
# deployments (which run scripts on the *servers* over SSH, never here).
_TEMPLATE_MODULES = ["loader", "schema", "functions", "compose", "resolve", "resources",
                     "placement", "graph", "model", "providers/local", "providers/deploy",
                     "providers/software", "providers/addresses", "ssh"]


def _executing_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            module = getattr(node, "module", None) or ""
            for name in [module, *names]:
                if name.split(".")[0] in _EXECUTING_MODULES:
                    found.append(f"{path.name}:{node.lineno} imports {name}")
            if module == "os" and set(names) & _EXECUTING_CALLS:
                found.append(f"{path.name}:{node.lineno} imports os.{names}")
        elif isinstance(node, ast.Attribute) and node.attr in _EXECUTING_CALLS \
                and isinstance(node.value, ast.Name) and node.value.id in ("os", "posix"):
            found.append(f"{path.name}:{node.lineno} calls os.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _EXECUTING_BUILTINS:
            found.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
        elif isinstance(node, ast.Attribute) and node.attr in (
                "load", "unsafe_load", "full_load", "load_all", "unsafe_load_all") \
                and isinstance(node.value, ast.Name) and node.value.id == "yaml":
            found.append(f"{path.name}:{node.lineno} uses yaml.{node.attr} (object tags)")
    return found


@pytest.mark.parametrize("module", _TEMPLATE_MODULES)
def test_template_reachable_code_never_executes_locally(module: str) -> None:
    path = REPO / "cloudtmpl" / f"{module}.py"
    paths = [path] if path.exists() else sorted((REPO / "cloudtmpl" / module).glob("*.py"))
    assert paths, f"no module or package cloudtmpl.{module}"
    assert [use for p in paths for use in _executing_uses(p)] == []


def test_no_function_or_type_is_a_command_runner() -> None:
    suspicious = ("exec", "shell", "command", "run", "script", "eval", "system", "popen")
    for name, cls in functions.REGISTRY.items():
        assert cls.__module__ == "cloudtmpl.functions", name
        assert not any(word in name.lower() for word in suspicious), name
    local_kinds = {kind for kind, t in resources.TYPES.items()
                   if getattr(t, "target", None) == resources.LOCAL_TARGET
                   or kind.startswith(("Cloud::Local::", "Cloud::Random::"))}
    for kind in local_kinds:
        assert not any(word in kind.lower() for word in ("exec", "shell", "command", "script"))
    # the whole package: only the sandbox manager and the emulator's sshd start processes
    starters = []
    for path in sorted((REPO / "cloudtmpl").rglob("*.py")):
        if _executing_uses(path):
            starters.append(str(path.relative_to(REPO)))
    assert set(starters) <= {"cloudtmpl_sandbox/manager.py",
                             "cloudtmpl_sandbox/sshd.py"}, starters


def test_yaml_object_tags_are_refused() -> None:
    text = HEAD + "a: !!python/object/apply:os.system ['touch /tmp/cloudtmpl-pwned']\n"
    with pytest.raises(DiagnosticError) as exc:
        load_text(text, "tag.yaml")
    (diag,) = exc.value.diagnostics
    assert diag.code == "yaml-syntax" and "python/object" in diag.message
    assert (diag.loc.line, diag.loc.column) == (2, 4)
    assert not Path("/tmp/cloudtmpl-pwned").exists()
