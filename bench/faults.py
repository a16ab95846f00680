"""Fault benchmark: apply the torture stack N times (default 20) under 20% transient faults.

Run by hand: ``python bench/faults.py [--trials 20] [--share 0.2] [--ambiguous 0.5]``.
Starts its own sandboxes; per trial it empties both clouds and applies the
58-resource two-cloud stack of ``tests/torture/stack.py`` from scratch, first
without faults, then with both sandboxes failing ``--share`` of API requests
(split evenly: 500/503 with the clouds' error bodies; throttling - EC2
``RequestLimitExceeded``/``Throttling``, OpenStack 429 + ``Retry-After: 1``;
connections closed without a response, ``--ambiguous`` of those after the
request took effect).  A failed apply is run again (at most 6 runs).  Each
faulty trial must end converged with exactly the desired resources.  Prints the
median wall time with and without faults, the added time, how many applies
needed more than one run, and the faults the AWS sandbox injected.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudtmpl_sandbox import manager  # noqa: E402
from tests.torture import stack as S  # noqa: E402

TEMPLATE = "torture.yaml"


def apply_until_done(cwd: Path, runs: int = 6) -> tuple[float, int, bool]:
    started = time.monotonic()
    for attempt in range(1, runs + 1):
        if S.cli(cwd, "apply", TEMPLATE, "--yes").returncode == 0:
            return time.monotonic() - started, attempt, True
    return time.monotonic() - started, runs, False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--ambiguous", type=float, default=0.5)
    args = parser.parse_args()
    clean_times: list[float] = []
    fault_times: list[float] = []
    reruns = bad = 0
    with tempfile.TemporaryDirectory(prefix="cloudtmpl-faults-") as tmp:
        sandbox_dir = Path(tmp) / "sandbox"
        os.environ["CLOUDTMPL_SANDBOX_DIR"] = str(sandbox_dir)
        status = manager.start(sandbox_dir)
        aws, openstack = status["aws"], status["openstack"]
        aws_faults, os_faults = S.faults(args.share, ambiguous=args.ambiguous)
        injected: dict[str, int] = {}
        try:
            for trial in range(args.trials):
                for faulty in (False, True):
                    cwd = Path(tmp) / f"p{trial}{'f' if faulty else 'c'}"
                    cwd.mkdir()
                    (cwd / "cloudtmpl.yaml").write_text("providers: {}\n")
                    (cwd / TEMPLATE).write_text(S.template())
                    if faulty:
                        S.reset_clouds(aws, openstack, aws_faults, os_faults)
                    else:
                        S.reset_clouds(aws, openstack)
                    S.post(aws, "/_sandbox/requests/reset")
                    seconds, runs, ok = apply_until_done(cwd)
                    if faulty:
                        for k, v in S.get(aws, "/_sandbox/faults").items():
                            injected[k] = injected.get(k, 0) + v
                        S.calm(aws, openstack)  # checks and plan run without faults
                    v = S.compare(aws, openstack, "torture", S.desired())
                    converged, plan = S.converged(cwd, TEMPLATE)
                    if not converged:
                        print(f"  plan after trial {trial} ({runs} run(s)) wants:\n{plan}",
                              flush=True)
                    good = ok and v.clean and converged
                    bad += not good
                    (fault_times if faulty else clean_times).append(seconds)
                    reruns += faulty and runs > 1
                    print(f"trial {trial:2d} {'faults' if faulty else 'clean '}: {seconds:6.2f} s,"
                          f" {runs} run(s), {'ok' if good else f'BAD {v} converged={converged}'}",
                          flush=True)
        finally:
            manager.stop(sandbox_dir)
    clean, faulty_median = S.median(clean_times), S.median(fault_times)
    print(f"median apply: clean {clean:.2f} s, with {args.share:.0%} faults "
          f"{faulty_median:.2f} s, added {faulty_median - clean:+.2f} s "
          f"({faulty_median / clean:.2f}x); {reruns}/{args.trials} faulty applies needed "
          f"a second run; {bad} trials not converged/correct")
    print(f"faults injected by the AWS sandbox: {injected}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
