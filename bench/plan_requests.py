"""Benchmark: cloud API requests and wall time of a no-op plan, by stack size.

Run by hand: ``python bench/plan_requests.py [--sizes 10,50,150] [--repeat 5]``.
Starts a private AWS sandbox, applies a stack of N servers in one region, then
plans it ``--repeat`` times and prints the median seconds and the request count
(which should stay flat as N grows: one listing per kind, every page followed).
Everything runs on 127.0.0.1 and the sandbox is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudtmpl_sandbox import manager  # noqa: E402


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cloudtmpl.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def template(n: int) -> str:
    body = "".join(f"  s{i:04d}:\n    type: Cloud::Compute::Server\n"
                   f"    properties: {{image: ubuntu-22.04, flavor: tiny}}\n" for i in range(n))
    return ("heat_template_version: 2021-04-16\n"
            "placement: {provider: sandbox-aws, region: us-east-1}\nresources:\n" + body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,50,150")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CLOUDTMPL_SANDBOX_DIR"] = str(Path(tmp) / "sandbox")
        manager.start()
        try:
            print(f"{'servers':>8} {'apply s':>8} {'requests':>9} {'plan median s':>14}")
            for n in (int(s) for s in args.sizes.split(",")):
                work = Path(tmp) / f"n{n}"
                work.mkdir()
                (work / f"b{n}.yaml").write_text(template(n))
                started = time.monotonic()
                r = cli(work, "apply", f"b{n}.yaml", "--yes", "--parallelism", "16")
                applied = time.monotonic() - started
                if r.returncode != 0:
                    raise SystemExit(r.stderr + r.stdout[-2000:])
                seconds, requests = [], set()
                for _ in range(args.repeat):
                    started = time.monotonic()
                    r = cli(work, "plan", f"b{n}.yaml", "--format", "json")
                    seconds.append(time.monotonic() - started)
                    plan = json.loads(r.stdout)
                    assert plan["summary"]["no-op"] == n, plan["summary"]
                    requests.add(plan["stats"]["api_requests"])
                print(f"{n:>8} {applied:>8.1f} {','.join(map(str, sorted(requests))):>9} "
                      f"{statistics.median(seconds):>14.2f}")
                cli(work, "destroy", f"b{n}.yaml", "--yes", "--parallelism", "16")
        finally:
            manager.stop()


if __name__ == "__main__":
    main()
