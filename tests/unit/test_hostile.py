"""The hostile-input suite: input that would make cloudtmpl run away ends in a diagnostic.

Every run is the real CLI in a process of its own, under ``RLIMIT_AS`` 500 MB
and a 10 s timeout (:mod:`tests.hostile`), and must end with exit 1, a stable
diagnostic code and no traceback: the cases of issue 13 as written (a
``str_replace`` of a 2 MB template, 41 chained ``OS::Heat::Value``s doubling a
string, a 3 x 3000 ``repeat``, seven nested files each a group of 10, templates
that include themselves or each other, a 1.5 GB template, ``-e /dev/zero``,
``-p x=@/dev/zero``, ``get_file`` of a FIFO), and a property-based generator
around them (nesting, repeats, doubling chains, many copies of large values,
cycles of includes, big and odd files), whose inputs within the limits must
succeed instead.

Examples per generator: ``CLOUDTMPL_HOSTILE_EXAMPLES`` (default 12; the whole
file then takes well under a minute).  The last test prints how many inputs ran,
the slowest one and the one with the highest peak RSS (``pytest -s``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cloudtmpl.limits import LIMITS, MiB
from tests.hostile import MEMORY, Forker, Outcome, refused, run_fresh

HEAD = "heat_template_version: 2021-04-16\n"
EXAMPLES = int(os.environ.get("CLOUDTMPL_HOSTILE_EXAMPLES", "12"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture],
                    print_blob=True)
OUTCOMES: list[Outcome] = []


@pytest.fixture(scope="module")
def forker() -> Iterator[Forker]:
    server = Forker()
    try:
        yield server
    finally:
        server.close()


def fresh(cwd: Path, *args: str) -> Outcome:
    outcome = run_fresh(cwd, *args)
    OUTCOMES.append(outcome)
    return outcome


def value_resource(name: str, value: str) -> str:
    return f"  {name}:\n    type: OS::Heat::Value\n    properties:\n      value: {value}\n"


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def located(outcome: Outcome, code: str, where: str) -> None:
    """The diagnostic ``code`` is printed at ``where`` (file:line:col)."""
    assert f"{where}: error[{code}]" in outcome.err + outcome.out, outcome.describe()
    assert "hint: the limit" in outcome.err + outcome.out or code != "limit-exceeded", \
        outcome.describe()


# --------------------------------------------------------------- the cases as written


def test_str_replace_of_a_2mb_template(tmp_path: Path, forker: Forker) -> None:
    template = "$a" * MiB  # 2 MB; each $a to 4,000 characters: 4 GB once replaced
    write(tmp_path, {"t.yaml": HEAD + "resources:\n" + value_resource(
        "v", "\n        str_replace:\n          template: '" + template
        + "'\n          params: {$a: '" + "x" * 4000 + "'}")})
    outcome = forker.run(tmp_path, "validate", "t.yaml", "--target", "local")
    assert refused(outcome, ["limit-exceeded"]) == "limit-exceeded"
    located(outcome, "limit-exceeded", "t.yaml:7:9")
    assert "'value size' is 1 MiB" in outcome.err


def test_str_replace_that_multiplies_a_small_template(tmp_path: Path, forker: Forker) -> None:
    # within the limit as written (200 KB), 50 GB once replaced: refused before it is built
    write(tmp_path, {"t.yaml": HEAD + "resources:\n" + value_resource(
        "v", "{str_replace: {template: '" + "$a" * 100_000 + "', params: {$a: '"
        + "y" * 250_000 + "'}}}")})
    outcome = forker.run(tmp_path, "validate", "t.yaml", "--target", "local")
    refused(outcome, ["limit-exceeded"])
    located(outcome, "limit-exceeded", "t.yaml:6:15")


def doubling_values(count: int) -> str:
    body = [HEAD, "resources:\n", value_resource("v0", "ab")]
    for i in range(1, count + 1):
        body.append(value_resource(
            f"v{i}", f"{{list_join: ['', [{{get_attr: [v{i - 1}, value]}}, "
                     f"{{get_attr: [v{i - 1}, value]}}]]}}"))
    return "".join(body)


def test_41_chained_values_doubling_a_string_stop_in_apply(tmp_path: Path,
                                                           forker: Forker) -> None:
    write(tmp_path, {"t.yaml": doubling_values(41)})
    outcome = forker.run(tmp_path, "apply", "t.yaml", "--target", "local", "-y")
    refused(outcome, ["limit-exceeded"])
    # v19 would be 2 * 2^19 = 1 MiB + its quotes: the first value over the limit
    assert "failed create v19" in outcome.out and "t.yaml:82:15" in outcome.out, \
        outcome.describe()
    state = tmp_path / ".cloudtmpl" / "state.db"
    assert state.stat().st_size < 8 * MiB  # was 1 GB
    with sqlite3.connect(state) as db:
        (count,) = db.execute("SELECT count(*) FROM resources").fetchone()
    assert count == 19  # v0 .. v18 exist; nothing after the refusal was made
    again = forker.run(tmp_path, "plan", "t.yaml", "--target", "local")
    refused(again, ["limit-exceeded"])  # now v18 is known: refused while planning
    located(again, "limit-exceeded", "t.yaml:82:15")


def test_a_3_by_3000_repeat(tmp_path: Path, forker: Forker) -> None:
    items = ", ".join(f"i{j}" for j in range(3000))
    write(tmp_path, {"t.yaml": HEAD + "resources:\n" + value_resource(
        "v", "\n        repeat:\n          for_each: {'%a%': [" + items + "], '%b%': ["
        + items + "], '%c%': [" + items + "]}\n          template: '%a%-%b%-%c%'")})
    outcome = forker.run(tmp_path, "validate", "t.yaml", "--target", "local")
    refused(outcome, ["limit-exceeded"])
    located(outcome, "limit-exceeded", "t.yaml:7:9")
    assert outcome.seconds < 10


def nested_groups(levels: int, count: int, leaf: str = "OS::Heat::None") -> dict[str, str]:
    files = {}
    for i in range(levels):
        member = f"n{i + 1}.yaml" if i < levels - 1 else leaf
        files[f"n{i}.yaml"] = (HEAD + "resources:\n  g:\n    type: OS::Heat::ResourceGroup\n"
                               f"    properties: {{count: {count}, resource_def: "
                               f"{{type: {member}}}}}\n")
    return files


def test_seven_nested_files_each_a_group_of_10(tmp_path: Path, forker: Forker) -> None:
    files = nested_groups(7, 10)
    assert all(len(text) <= 150 for text in files.values())
    write(tmp_path, files)
    outcome = forker.run(tmp_path, "validate", "n0.yaml", "--target", "local")
    refused(outcome, ["limit-exceeded"])
    located(outcome, "limit-exceeded", "n5.yaml:5:50")  # n6.yaml would be at depth 6
    assert "'nesting depth' is 5" in outcome.err


def test_five_nested_groups_of_10_stop_at_the_resource_limit(tmp_path: Path,
                                                             forker: Forker) -> None:
    write(tmp_path, nested_groups(5, 10))  # 100,000 resources; depth 4 is allowed
    outcome = forker.run(tmp_path, "validate", "n0.yaml", "--target", "local")
    refused(outcome, ["limit-exceeded"])
    assert "more than 10,000 resources" in outcome.err, outcome.describe()


def test_a_template_that_includes_itself(tmp_path: Path, forker: Forker) -> None:
    write(tmp_path, {"t.yaml": HEAD + "resources:\n  me:\n    type: t.yaml\n"})
    outcome = forker.run(tmp_path, "validate", "t.yaml", "--target", "local")
    refused(outcome, ["template-cycle"])
    located(outcome, "template-cycle", "t.yaml:4:11")
    assert "t.yaml -> t.yaml" in outcome.err


def test_two_templates_that_include_each_other(tmp_path: Path, forker: Forker) -> None:
    write(tmp_path, {"a.yaml": HEAD + "resources:\n  b:\n    type: b.yaml\n",
                     "b.yaml": HEAD + "resources:\n  a:\n    type: ./a.yaml\n"})
    outcome = forker.run(tmp_path, "validate", "a.yaml", "--target", "local")
    refused(outcome, ["template-cycle"])
    located(outcome, "template-cycle", "b.yaml:4:11")
    assert "a.yaml -> b.yaml -> a.yaml" in outcome.err


def test_a_cycle_through_a_group_and_the_registry(tmp_path: Path, forker: Forker) -> None:
    write(tmp_path, {
        "a.yaml": HEAD + "resources:\n  g:\n    type: OS::Heat::ResourceGroup\n"
                  "    properties: {count: 3, resource_def: {type: My::B}}\n",
        "b.yaml": HEAD + "resources:\n  back:\n    type: a.yaml\n",
        "env.yaml": "resource_registry:\n  My::B: b.yaml\n"})
    outcome = forker.run(tmp_path, "validate", "a.yaml", "-e", "env.yaml", "--target", "local")
    refused(outcome, ["template-cycle"])


# ------------------------------------------------ file cases, through a fresh CLI process


def test_a_1_5_gb_template_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:
        fh.write((HEAD + "resources: {}\n#").encode())
        fh.truncate(1536 * MiB)  # sparse: costs no disk
    outcome = fresh(tmp_path, "validate", "big.yaml", "--target", "local")
    refused(outcome, ["input-too-large"])
    assert outcome.max_rss_mb < 200, outcome.describe()  # 10 MiB read, not 1.5 GB


def test_an_environment_of_dev_zero(tmp_path: Path) -> None:
    write(tmp_path, {"t.yaml": HEAD + "resources: {}\n"})
    outcome = fresh(tmp_path, "validate", "t.yaml", "-e", "/dev/zero", "--target", "local")
    refused(outcome, ["not-a-regular-file"])
    assert "/dev/zero: error[not-a-regular-file]" in outcome.err


def test_a_parameter_file_of_dev_zero(tmp_path: Path) -> None:
    write(tmp_path, {"t.yaml": HEAD + "parameters:\n  x: {type: string}\nresources: {}\n"})
    outcome = fresh(tmp_path, "validate", "t.yaml", "-p", "x=@/dev/zero", "--target", "local")
    refused(outcome, ["not-a-regular-file"])
    assert "-p x: cannot read /dev/zero" in outcome.err


def test_get_file_of_a_fifo(tmp_path: Path) -> None:
    write(tmp_path, {"t.yaml": HEAD + "resources:\n" + value_resource("v", "{get_file: pipe}")})
    os.mkfifo(tmp_path / "pipe")  # no writer: open() alone would hang
    outcome = fresh(tmp_path, "validate", "t.yaml", "--target", "local")
    refused(outcome, ["not-a-regular-file"])
    located(outcome, "not-a-regular-file", "t.yaml:6:15")


@pytest.mark.parametrize("role", ["template", "parameter", "nested", "config", "plan"])
def test_a_fifo_in_every_other_place(tmp_path: Path, forker: Forker, role: str) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    write(tmp_path, {
        "t.yaml": HEAD + "parameters:\n  x: {type: string, default: a}\nresources:\n"
                  + ("  n:\n    type: pipe.yaml\n" if role == "nested"
                     else value_resource("v", "{get_param: x}"))})
    if role == "config":
        (tmp_path / "pipe.yaml").rename(tmp_path / "cloudtmpl.yaml")
    args = {"template": ["validate", "pipe.yaml"], "parameter": ["validate", "t.yaml", "-p",
                                                                  "x=@pipe.yaml"],
            "nested": ["validate", "t.yaml"], "config": ["validate", "t.yaml"],
            "plan": ["show", "pipe.yaml"]}[role]
    outcome = forker.run(tmp_path, *args, "--target", "local") if role != "plan" \
        else forker.run(tmp_path, *args)
    refused(outcome, ["not-a-regular-file"])


def test_a_plan_file_over_its_limit(tmp_path: Path, forker: Forker) -> None:
    with (tmp_path / "plan.json").open("wb") as fh:
        fh.write(b'{"format_version": 1, "changes": [')
        fh.truncate(LIMITS.plan_file_bytes + 1)
    outcome = forker.run(tmp_path, "show", "plan.json")
    refused(outcome, ["input-too-large"])
    assert "'plan file size' is 32 MiB" in outcome.err


def test_a_plan_file_of_a_million_changes(tmp_path: Path, forker: Forker) -> None:
    (tmp_path / "plan.json").write_text(json.dumps(
        {"format_version": 1, "changes": [{}] * 1_000_000}))
    outcome = forker.run(tmp_path, "show", "plan.json")
    refused(outcome, ["plan-file"])
    assert "1,000,000 changes" in outcome.err


# --------------------------------------------------------------------- the generator


@st.composite
def nesting(draw: st.DrawFn) -> tuple[dict[str, str], bool]:
    """Levels of nested templates, each a group of a few (or a plain template
    resource): over the limits when too deep or too many resources."""
    levels = draw(st.integers(1, 8))
    counts = [draw(st.none() | st.integers(1, 12)) for _ in range(levels)]  # None: direct
    files = {}
    for i, count in enumerate(counts):
        member = f"n{i + 1}.yaml" if i < levels - 1 else draw(
            st.sampled_from(["OS::Heat::None", "OS::Heat::Value"]))
        props = "{value: '%index%'}" if member == "OS::Heat::Value" else "{}"
        if count is None:
            body = f"  r:\n    type: {member}\n    properties: {props}\n"
        else:
            body = (f"  g:\n    type: OS::Heat::ResourceGroup\n    properties: {{count: "
                    f"{count}, resource_def: {{type: {member}, properties: {props}}}}}\n")
        files[f"n{i}.yaml"] = HEAD + "resources:\n" + body
    resources = math.prod(c or 1 for c in counts)
    over = levels - 1 > LIMITS.nesting_depth or resources > LIMITS.resources
    return files, over


@st.composite
def repeats(draw: st.DrawFn) -> tuple[dict[str, str], bool | None]:
    """A repeat of several lists (perhaps in a list_join or inside another repeat)."""
    lists = draw(st.lists(st.integers(1, 3000), min_size=1, max_size=4))
    width = draw(st.integers(1, 200))
    placeholders = [f"<%p{i}%>" for i in range(len(lists))]
    item = "-".join(placeholders) + "x" * width
    for_each = ", ".join(f"'{p}': [" + ", ".join(f"v{j}" for j in range(n)) + "]"
                         for p, n in zip(placeholders, lists, strict=True))
    value = f"{{repeat: {{for_each: {{{for_each}}}, template: '{item}'}}}}"
    copies = math.prod(lists)
    size = copies * (len(item) - 5 * len(lists) + 3 + 2 * len(lists))  # each copy, quoted
    outer = draw(st.sampled_from(["none", "join", "repeat"]))
    if outer == "join":
        value = f"{{list_join: [',', {value}]}}"
    elif outer == "repeat":
        value = f"{{repeat: {{for_each: {{'<%o%>': [a, b, c]}}, template: [{value}]}}}}"
        size *= 3
    text = HEAD + "resources:\n" + value_resource("v", value)
    assume(len(text) < LIMITS.file_bytes)
    over = True if size > 2 * LIMITS.value_bytes else False if size < LIMITS.value_bytes // 4 \
        else None
    return {"t.yaml": text}, over


@st.composite
def doubling(draw: st.DrawFn) -> tuple[dict[str, str], bool | None, str]:
    """A chain of functions each doubling the last value: inline (validate), through
    YAML aliases, or through OS::Heat::Value resources (apply)."""
    steps = draw(st.integers(1, 45))
    base = draw(st.integers(1, 64))
    how = draw(st.sampled_from(["str_replace", "repeat", "aliases", "values"]))
    if how == "values":
        steps = min(steps, 30)
        body = [value_resource("v0", "'" + "a" * base + "'")]
        for i in range(1, steps + 1):
            body.append(value_resource(
                f"v{i}", "{str_replace: {template: '$x$x', params: {$x: {get_attr: "
                         f"[v{i - 1}, value]}}}}}}}}"))
        text = HEAD + "resources:\n" + "".join(body)
        size = base * 2 ** steps + 2
        return {"t.yaml": text}, size > LIMITS.value_bytes, "apply"
    value = "'" + "a" * base + "'"
    if how == "str_replace":
        steps = min(steps, 30)  # 3 levels of YAML each: within the loader's 100
        for _ in range(steps):
            value = f"{{str_replace: {{template: '$x$x', params: {{$x: {value}}}}}}}"
        size = base * 2 ** steps + 2
        over = size > LIMITS.value_bytes
    elif how == "repeat":
        steps = min(steps, 24)
        for _ in range(steps):
            value = f"{{repeat: {{for_each: {{'<%i%>': [a, b]}}, template: [{value}]}}}}"
        size = (base + 6) * 2 ** steps
        over = True if size > 2 * LIMITS.value_bytes else False \
            if size < LIMITS.value_bytes // 8 else None
    else:
        anchors = ["&l0 ['" + "a" * base + "']"]
        for i in range(1, steps + 1):
            anchors.append(f"&l{i} {{list_concat: [*l{i - 1}, *l{i - 1}]}}")
        value = "[" + ", ".join(anchors) + "]"
        over = True if steps > 17 else False if steps < 12 else None
    return {"t.yaml": HEAD + "resources:\n" + value_resource("v", value)}, over, "validate"


@st.composite
def wide(draw: st.DrawFn) -> tuple[dict[str, str], bool | None]:
    """Many copies of a large value: a group's members each with a long string, or
    outputs each referring to every member of a large group."""
    count = draw(st.integers(1, 4_000))
    if draw(st.booleans()):
        length = draw(st.integers(1, 400_000))
        text = HEAD + "resources:\n  g:\n    type: OS::Heat::ResourceGroup\n" \
            f"    properties:\n      count: {count}\n      resource_def:\n" \
            "        type: OS::Heat::Value\n        properties: {value: '%index%" \
            + "z" * length + "'}\n"
        total = count * (length + 8)  # each member's value, counted once as a property
        over = True if total > 1.5 * LIMITS.total_value_bytes else False \
            if total < LIMITS.total_value_bytes / 3 else None
        return {"t.yaml": text}, over
    refs = draw(st.integers(1, 400))
    text = HEAD + "resources:\n  g:\n    type: OS::Heat::ResourceGroup\n" \
        f"    properties: {{count: {count}, resource_def: {{type: OS::Heat::None}}}}\n" \
        "outputs:\n" + "".join(f"  o{i}: {{value: {{get_attr: [g, refs]}}}}\n"
                               for i in range(refs))
    nodes = count * refs  # each reference a list of one get_resource per member
    over = True if nodes > 1.2 * LIMITS.total_nodes else False \
        if nodes < LIMITS.total_nodes / 4 else None
    return {"t.yaml": text}, over


@st.composite
def cycles(draw: st.DrawFn) -> tuple[dict[str, str], list[str], str]:
    """``k`` templates each including the next, the last the first; through direct
    template resources, groups or environment resource_registry entries."""
    k = draw(st.integers(1, 8))
    files: dict[str, str] = {}
    registry = []
    for i in range(k):
        target = f"f{(i + 1) % k}.yaml"
        via = draw(st.sampled_from(["direct", "dot", "group", "registry"]))
        if via == "registry":
            registry.append(f"  My::T{i}: {target}")
            target = f"My::T{i}"
        elif via == "dot":
            target = "./" + target
        if via == "group":
            body = (f"  g:\n    type: OS::Heat::ResourceGroup\n    properties: {{count: 2, "
                    f"resource_def: {{type: {target}}}}}\n")
        else:
            body = f"  next:\n    type: {target}\n"
        files[f"f{i}.yaml"] = HEAD + "resources:\n" + body
    args = []
    if registry:
        files["env.yaml"] = "resource_registry:\n" + "\n".join(registry) + "\n"
        args = ["-e", "env.yaml"]
    # the cycle closes at depth k: seen as a cycle unless the depth limit comes first
    expected = "template-cycle" if k - 1 <= LIMITS.nesting_depth else "limit-exceeded"
    return files, args, expected


ROLES = ["template", "environment", "parameter", "get_file", "nested", "config", "plan"]
KINDS = ["fifo", "dev-zero", "directory", "huge", "over-value", "binary", "nul", "empty",
         "symlink-loop"]


def odd_file(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind in ("huge", "over-value"):
        with path.open("wb") as fh:
            fh.write(b"a: b\n#")
            fh.truncate(LIMITS.file_bytes + 1 if kind == "huge" else 2 * MiB)
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "nul":
        path.write_bytes(b"\0" * 4096)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "symlink-loop":
        path.symlink_to(path.name)


def expected_codes(role: str, kind: str) -> set[str | None]:
    """What a file of ``kind`` in ``role`` may end as (None: accepted, exit 0)."""
    if kind in ("fifo",):
        return {"not-a-regular-file"}
    if kind == "dev-zero":  # a link out of the project for get_file/nested: refused as such
        return {"not-a-regular-file", "file-not-found", "file-outside-project"}
    if kind in ("directory", "symlink-loop"):
        return {"file-not-found", "plan-file"}
    if kind == "huge":  # over the file limit; a plan file may be larger (then not JSON)
        return {"plan-file"} if role == "plan" else {"input-too-large"}
    if kind == "over-value":  # 2 MiB: a file may be this big, a value may not
        return {"input-too-large", "limit-exceeded"} if role in ("parameter", "get_file") \
            else {None, "plan-file", "yaml-syntax", "not-a-mapping"}
    if kind == "empty":
        return {None, "not-a-mapping", "plan-file", "missing-section", "template-version"}
    return {"file-not-found", "yaml-syntax", "plan-file", "not-a-mapping", None}


@SETTINGS
@given(case=nesting())
def test_generated_nesting(tmp_path_factory: pytest.TempPathFactory, forker: Forker,
                           case: tuple[dict[str, str], bool]) -> None:
    files, over = case
    directory = write(tmp_path_factory.mktemp("nest"), files)
    outcome = forker.run(directory, "validate", "n0.yaml", "--target", "local")
    if over:
        refused(outcome, ["limit-exceeded"])
    else:
        assert outcome.code == 0, outcome.describe()


@SETTINGS
@given(case=repeats())
def test_generated_repeats(tmp_path_factory: pytest.TempPathFactory, forker: Forker,
                           case: tuple[dict[str, str], bool | None]) -> None:
    files, over = case
    outcome = forker.run(write(tmp_path_factory.mktemp("repeat"), files), "validate",
                         "t.yaml", "--target", "local")
    check(outcome, over)


@SETTINGS
@given(case=doubling())
def test_generated_doubling_chains(tmp_path_factory: pytest.TempPathFactory, forker: Forker,
                                   case: tuple[dict[str, str], bool | None, str]) -> None:
    files, over, command = case
    directory = write(tmp_path_factory.mktemp("double"), files)
    args = [command, "t.yaml", "--target", "local"] + (["-y"] if command == "apply" else [])
    check(forker.run(directory, *args), over, ["limit-exceeded", "too-many-nodes"])


@SETTINGS
@given(case=wide())
def test_generated_wide_copies(tmp_path_factory: pytest.TempPathFactory, forker: Forker,
                               case: tuple[dict[str, str], bool | None]) -> None:
    files, over = case
    outcome = forker.run(write(tmp_path_factory.mktemp("wide"), files), "validate",
                         "t.yaml", "--target", "local")
    check(outcome, over)


@SETTINGS
@given(case=cycles())
def test_generated_cycles_of_includes(tmp_path_factory: pytest.TempPathFactory,
                                      forker: Forker,
                                      case: tuple[dict[str, str], list[str], str]) -> None:
    files, args, expected = case
    directory = write(tmp_path_factory.mktemp("cycle"), files)
    outcome = forker.run(directory, "validate", "f0.yaml", *args, "--target", "local")
    refused(outcome, [expected])


@SETTINGS
@given(role=st.sampled_from(ROLES), kind=st.sampled_from(KINDS))
def test_generated_big_and_odd_files(tmp_path_factory: pytest.TempPathFactory,
                                     forker: Forker, role: str, kind: str) -> None:
    directory = tmp_path_factory.mktemp("odd")
    write(directory, {"t.yaml": HEAD + "parameters:\n  x: {type: string, default: a}\n"
                      "resources:\n" + ("  n:\n    type: odd.yaml\n" if role == "nested" else
                                        value_resource("v", "{get_file: odd.yaml}")
                                        if role == "get_file" else
                                        value_resource("v", "{get_param: x}"))})
    odd = directory / ("cloudtmpl.yaml" if role == "config" else "odd.yaml")
    odd_file(odd, kind)
    args = {"template": ["validate", "odd.yaml", "--target", "local"],
            "environment": ["validate", "t.yaml", "-e", "odd.yaml", "--target", "local"],
            "parameter": ["validate", "t.yaml", "-p", "x=@odd.yaml", "--target", "local"],
            "get_file": ["validate", "t.yaml", "--target", "local"],
            "nested": ["validate", "t.yaml", "--target", "local"],
            "config": ["validate", "t.yaml", "--target", "local"],
            "plan": ["show", "odd.yaml"]}[role]
    outcome = forker.run(directory, *args)
    allowed = expected_codes(role, kind)
    if outcome.code == 0:
        assert None in allowed, outcome.describe()
        assert not outcome.timed_out and "Traceback" not in outcome.err
    else:
        refused(outcome)
        assert set(outcome.codes) & allowed, f"expected {allowed}: {outcome.describe()}"


def check(outcome: Outcome, over: bool | None, codes: list[str] | None = None) -> None:
    """Over the limits: refused; within: accepted; near them: either, but cleanly."""
    codes = codes or ["limit-exceeded"]
    if over is True or (over is None and outcome.code != 0):
        refused(outcome, codes)
    else:
        assert outcome.code == 0, outcome.describe()
        assert not outcome.timed_out and outcome.max_rss_mb < MEMORY / 2**20


# --------------------------------------------------------------------------- summary


def test_zz_summary(forker: Forker) -> None:
    """How many inputs ran, and the slowest and the most memory-hungry of them."""
    outcomes = [*OUTCOMES, *forker.outcomes]
    assert outcomes, "the suite ran nothing"
    refusals = sum(1 for o in outcomes if o.code != 0)
    print(f"\n[hostile] {len(outcomes)} inputs ran ({refusals} refused, "
          f"{len(outcomes) - refusals} accepted), each under {MEMORY // MiB} MB and 10 s")
    for label, key in (("slowest", lambda o: o.seconds), ("highest RSS", lambda o: o.max_rss_mb)):
        for o in sorted(outcomes, key=key, reverse=True)[:3]:
            what = o.codes[0] if o.codes else "accepted"
            print(f"[hostile] {label}: {o.seconds:.2f} s, {o.max_rss_mb:.0f} MB, {what}: "
                  f"{' '.join(o.args)} ({o.err.strip().splitlines()[0][:120] if o.err else ''})")
    assert all(o.seconds < 10 and o.max_rss_mb < 500 for o in outcomes)
