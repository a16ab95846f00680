"""Benchmark: wall time of deploying a script to N servers over SSH, by parallelism.

Run by hand: ``python bench/deploy.py [--servers 20] [--parallelism 1,10] [--repeat 5]
[--target sandbox-openstack/de-fra-1]``.  Starts private sandboxes (their servers
are real sshds on loopback), applies N keyed servers with floating IPs, then per
parallelism applies ``--repeat`` times a change of the deployments' input (so every
deployment runs again and nothing else changes) and prints the median wall time of
those applies and the ratio to the first parallelism.  Everything runs on 127.x
addresses; the sandboxes and their sshds are stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.plan_requests import cli  # noqa: E402
from cloudtmpl_sandbox import manager  # noqa: E402


def template(n: int, network: str) -> str:
    parts = ["heat_template_version: 2021-04-16\n",
             "parameters:\n  round: {type: string, default: '0'}\n",
             "resources:\n  key: {type: Cloud::Compute::KeyPair}\n"]
    for i in range(n):
        parts.append(
            f"  s{i}:\n    type: Cloud::Compute::Server\n"
            f"    properties: {{image: ubuntu-22.04, flavor: tiny, "
            f"key_name: {{get_resource: key}}}}\n"
            f"  s{i}_ip:\n    type: Cloud::Network::FloatingIP\n"
            f"    properties: {{server: {{get_resource: s{i}}}{network}}}\n"
            f"  d{i}:\n    type: Cloud::Software::Deployment\n"
            f"    depends_on: s{i}_ip\n"
            f"    properties:\n"
            f"      server: {{get_resource: s{i}}}\n"
            f"      ssh: {{key_pair: {{get_resource: key}}, timeout: 60}}\n"
            f"      inputs: {{round: {{get_param: round}}}}\n"
            f"      config: |\n"
            f"        #!/bin/sh\n"
            f"        echo \"round $round on $SERVER_ID\" >> \"$SERVER_ROOT/rounds\"\n")
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--parallelism", default="1,10")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--target", default="sandbox-openstack/de-fra-1")
    args = parser.parse_args()
    network = ", floating_network: public" if "openstack" in args.target else ""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CLOUDTMPL_SANDBOX_DIR"] = str(Path(tmp) / "sandbox")
        manager.start()
        work = Path(tmp) / "work"
        work.mkdir()
        (work / "cloudtmpl.yaml").write_text("providers: {}\n")
        (work / "deploy.yaml").write_text(template(args.servers, network))
        base = ["deploy.yaml", "--target", args.target, "--yes"]
        try:
            started = time.monotonic()
            r = cli(work, "apply", *base, "--parallelism", "16")
            if r.returncode != 0:
                raise SystemExit(r.stdout[-3000:] + r.stderr)
            print(f"{args.servers} servers + floating IPs + first deployments on "
                  f"{args.target}: {time.monotonic() - started:.1f} s")
            print(f"{'parallelism':>11} {'median s':>9} {'min s':>6} {'max s':>6} {'ratio':>6}")
            first: float | None = None
            rnd = 0
            for p in (int(x) for x in args.parallelism.split(",")):
                seconds = []
                for _ in range(args.repeat):
                    rnd += 1
                    started = time.monotonic()
                    r = cli(work, "apply", *base, "-p", f"round={rnd}", "--parallelism", str(p))
                    seconds.append(time.monotonic() - started)
                    if r.returncode != 0:
                        raise SystemExit(r.stdout[-3000:] + r.stderr)
                    assert f"{args.servers} to update" in r.stdout, r.stdout[:500]
                median = statistics.median(seconds)
                first = first or median
                print(f"{p:>11} {median:>9.2f} {min(seconds):>6.2f} {max(seconds):>6.2f} "
                      f"{first / median:>6.2f}")
            cli(work, "destroy", *base, "--parallelism", "16")
        finally:
            manager.stop()


if __name__ == "__main__":
    main()
