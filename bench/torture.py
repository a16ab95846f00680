"""Torture benchmark: SIGKILL ``apply``/``destroy`` at random moments, N trials (default 100).

Run by hand: ``python bench/torture.py [--trials 100] [--seed S]``.  Starts its
own sandboxes (a private ``CLOUDTMPL_SANDBOX_DIR``), applies the 58-resource
two-cloud stack of ``tests/torture/stack.py`` once to time it, then per trial:
kill ``apply`` after ``uniform(0, clean apply time)``, apply again, inspect
both clouds (boto3 / the OpenStack APIs) for orphans, duplicates and missing
resources, ``plan --detailed-exitcode``; kill ``destroy`` the same way, destroy
again, check that nothing of the stack is left and that every volume under
``deletion_policy: Snapshot`` was snapshotted exactly once.  Prints per-trial lines and the
totals; exits 1 if any trial found an orphan, a duplicate or no convergence.
Everything runs on 127.0.0.1; the sandboxes are stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudtmpl_sandbox import manager  # noqa: E402
from tests.torture import stack as S  # noqa: E402

TEMPLATE = "torture.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    totals = {"apply_killed": 0, "destroy_killed": 0, "orphans": 0, "duplicates": 0,
              "missing": 0, "problems": 0, "not_converged": 0, "reapply_failed": 0,
              "redestroy_failed": 0, "left_after_destroy": 0, "snapshotted_twice": 0,
              "deleted_without_snapshot": 0}
    with tempfile.TemporaryDirectory(prefix="cloudtmpl-torture-") as tmp:
        sandbox_dir = Path(tmp) / "sandbox"
        os.environ["CLOUDTMPL_SANDBOX_DIR"] = str(sandbox_dir)
        status = manager.start(sandbox_dir)
        try:
            aws, openstack = status["aws"], status["openstack"]
            S.reset_clouds(aws, openstack)
            cwd = Path(tmp) / "project"
            cwd.mkdir()
            (cwd / "cloudtmpl.yaml").write_text("providers: {}\n")
            (cwd / TEMPLATE).write_text(S.template())
            started = time.monotonic()
            assert S.cli(cwd, "apply", TEMPLATE, "--yes").returncode == 0
            apply_time = time.monotonic() - started
            started = time.monotonic()
            assert S.cli(cwd, "destroy", TEMPLATE, "--yes").returncode == 0
            destroy_time = time.monotonic() - started
            print(f"seed {args.seed}; clean apply {apply_time:.2f} s, destroy "
                  f"{destroy_time:.2f} s; {args.trials} trials", flush=True)
            want = S.desired()
            for trial in range(args.trials):
                killed, ran = S.killed_run(cwd, ["apply", TEMPLATE, "--yes"],
                                           rng.uniform(0, apply_time))
                totals["apply_killed"] += killed
                r = S.cli(cwd, "apply", TEMPLATE, "--yes")
                totals["reapply_failed"] += r.returncode != 0
                v = S.compare(aws, openstack, "torture", want)
                ok, _ = S.converged(cwd, TEMPLATE)
                for key in ("orphans", "duplicates", "missing", "problems"):
                    totals[key] += len(getattr(v, key))
                totals["not_converged"] += not ok
                line = (f"trial {trial:3d}: apply {'killed' if killed else 'done  '} at "
                        f"{ran:5.2f} s -> re-apply rc={r.returncode} {v} converged={ok}")
                killed_d, ran_d = S.killed_run(cwd, ["destroy", TEMPLATE, "--yes"],
                                               rng.uniform(0, destroy_time))
                totals["destroy_killed"] += killed_d
                r = S.cli(cwd, "destroy", TEMPLATE, "--yes")
                totals["redestroy_failed"] += r.returncode != 0
                left = S.compare(aws, openstack, "torture", [])
                totals["left_after_destroy"] += len(left.orphans) + len(left.duplicates)
                # deletion_policy Snapshot: each destroyed Snapshot volume has exactly one
                # snapshot (the clean cycle's plus one per trial on each cloud)
                snaps = S.snapshot_counts(aws, openstack, "torture")
                twice = sum(1 for n in snaps.values() if n != 1)
                missed = sum(max(0, trial + 2 - sum(1 for c, _ in snaps if c == cloud))
                             for cloud in ("aws", "openstack"))
                totals["snapshotted_twice"] += twice
                totals["deleted_without_snapshot"] += missed
                print(f"{line}; destroy {'killed' if killed_d else 'done  '} at {ran_d:5.2f} s"
                      f" -> re-destroy rc={r.returncode} left={left.orphans}", flush=True)
                if not (v.clean and ok and left.clean) or twice or missed:
                    print(f"  reproduce: python bench/torture.py --trials {trial + 1} "
                          f"--seed {args.seed}", flush=True)
        finally:
            manager.stop(sandbox_dir)
    print("totals: " + ", ".join(f"{k}={v}" for k, v in totals.items()))
    bad = sum(v for k, v in totals.items() if not k.endswith("_killed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
