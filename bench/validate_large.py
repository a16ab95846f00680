"""Benchmark: ``cloudtmpl validate`` of large templates (pure: no cloud is asked).

Run by hand: ``python bench/validate_large.py [--repeat 5] [--profile]``.

(a) 2,000 resources from nested templates and groups: ``--groups`` resource
    groups (default 20) of ``--members`` members (default 50), each member a
    2-resource nested template (a server and its floating IP).  Times the
    in-process validate (``workflow.resolve_stack``, the CLI's own path; median
    of ``--repeat`` runs) and one ``cloudtmpl validate`` subprocess (wall time,
    interpreter start-up included).
(b) 5,000 resources in co-located sets (a server, a volume and the attachment
    that refers to both; a server and the floating IP that refers to it) under a
    stack residency rule (``jurisdictions: [EU]``) and a per-resource
    ``placement: {country: DE|NL}``, timed with and without the ``placement:``
    rules; prints both medians and their ratio.

With ``--profile`` (or when (a) takes over 1.5 s) it prints the top functions of
a cProfile run of (a) by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudtmpl import workflow as wf  # noqa: E402
from cloudtmpl.config import load_project  # noqa: E402
from cloudtmpl.inputs import Inputs, read_sources  # noqa: E402

NODE = """\
heat_template_version: 2021-04-16
parameters:
  flavor: {type: string, default: tiny}
  name: {type: string}
resources:
  server:
    type: OS::Nova::Server
    properties:
      image: ubuntu-22.04
      flavor: {get_param: flavor}
      metadata: {name: {get_param: name}}
  ip:
    type: Cloud::Network::FloatingIP
    properties: {server: {get_resource: server}, floating_network: public}
outputs:
  address: {value: {get_attr: [server, first_address]}}
"""


def nested_groups(groups: int, members: int) -> str:
    body = [
        "heat_template_version: 2021-04-16",
        "resources:",
        "  sg: {type: OS::Neutron::SecurityGroup}",
    ]
    for g in range(groups):
        body += [
            f"  g{g:02d}:",
            "    type: OS::Heat::ResourceGroup",
            "    properties:",
            f"      count: {members}",
            "      resource_def:",
            "        type: node.yaml",
            f"        properties: {{name: g{g:02d}-%index%, flavor: small}}",
        ]
    body += ["outputs:"]
    body += [f"  a{g:02d}: {{value: {{get_attr: [g{g:02d}, address]}}}}" for g in range(groups)]
    return "\n".join(body) + "\n"


def residency_pairs(pairs: int, rules: bool) -> str:
    """``pairs`` servers, each with a volume and an attachment (3 resources), plus
    floating IPs to reach the size: every attachment links its server and volume,
    so each triple must be co-located; with ``rules`` the stack allows only the
    EU and every resource names a country."""
    body = ["heat_template_version: 2021-04-16"]
    if rules:
        body += ["placement: {residency: {jurisdictions: [EU]}}"]
    body += ["resources:"]
    countries = ("DE", "NL")
    for i in range(pairs):
        place = f"\n    placement: {{country: {countries[i % 2]}}}" if rules else ""
        body += [
            f"  s{i:04d}:\n    type: Cloud::Compute::Server{place}\n"
            f"    properties: {{image: ubuntu-22.04, flavor: tiny}}",
            f"  v{i:04d}:\n    type: Cloud::Block::Volume{place}\n    properties: {{size: 1}}",
            f"  a{i:04d}:\n    type: Cloud::Block::VolumeAttachment\n"
            f"    properties: {{instance_uuid: {{get_resource: s{i:04d}}}, "
            f"volume_id: {{get_resource: v{i:04d}}}}}",
        ]
    return "\n".join(body) + "\n"


def padded_pairs(total: int, rules: bool) -> str:
    """``residency_pairs`` filled up to ``total`` resources with server/IP pairs."""
    triples = total // 3 * 2 // 3  # two thirds of the resources in triples
    text = residency_pairs(triples, rules)
    rest = (total - 3 * triples) // 2
    extra = []
    for i in range(rest):
        place = f"\n    placement: {{country: {('DE', 'NL')[i % 2]}}}" if rules else ""
        extra += [
            f"  w{i:04d}:\n    type: Cloud::Compute::Server{place}\n"
            f"    properties: {{image: ubuntu-22.04, flavor: tiny}}",
            f"  f{i:04d}:\n    type: Cloud::Network::FloatingIP\n"
            f"    properties: {{server: {{get_resource: w{i:04d}}}}}",
        ]
    return text + "\n".join(extra) + "\n"


def validator(template: Path, target: str) -> Callable[[], int]:
    project = load_project(template.parent)
    inputs = Inputs(template=str(template), target=target)
    sources = read_sources(inputs)

    def run() -> int:
        return len(wf.resolve_stack(inputs, project, "validate", sources).resources)

    return run


def median_seconds(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), n


def cli_wall(template: Path, target: str) -> float:
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cloudtmpl.cli", "validate", str(template), "--target", target],
        cwd=template.parent, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    return wall


def profile(fn: Callable[[], int], top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats(order).print_stats(top)
        print(f"\n-- cProfile of (a), by {order} --")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--pairs-total", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cloudtmpl.yaml").write_text("providers: {}\n")
        (work / "node.yaml").write_text(NODE)
        big = work / "nested_groups.yaml"
        big.write_text(nested_groups(args.groups, args.members))
        run_a = validator(big, "sandbox-openstack")
        run_a()  # warm-up: imports, catalogs
        seconds_a, n_a = median_seconds(run_a, args.repeat)
        wall_a = cli_wall(big, "sandbox-openstack")
        print(f"(a) {n_a} resources ({args.groups} groups x {args.members} members x 2, "
              f"nested template): validate median {seconds_a:.3f} s "
              f"({args.repeat} runs, in-process); CLI subprocess wall {wall_a:.3f} s")  # fmt: skip

        with_rules = work / "pairs_rules.yaml"
        with_rules.write_text(padded_pairs(args.pairs_total, rules=True))
        without = work / "pairs_plain.yaml"
        without.write_text(padded_pairs(args.pairs_total, rules=False))
        run_r, run_p = validator(with_rules, "sandbox-openstack"), validator(
            without, "sandbox-openstack"
        )
        run_r(), run_p()
        seconds_r, n_r = median_seconds(run_r, args.repeat)
        seconds_p, n_p = median_seconds(run_p, args.repeat)
        assert n_r == n_p
        print(f"(b) {n_r} resources (co-located server/volume/attachment triples and "
              f"server/floating-IP pairs): validate median with placement rules "
              f"{seconds_r:.3f} s, without {seconds_p:.3f} s, ratio "
              f"{seconds_r / seconds_p:.2f}")  # fmt: skip
        if args.profile or seconds_a > 1.5:
            profile(run_a, args.top)


if __name__ == "__main__":
    main()
