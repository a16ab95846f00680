#!/usr/bin/env bash
# The whole test suite, in a brand-new virtualenv: what a fresh machine resolves, not
# whatever the machine's Python happens to carry. Installs '.[test]' into a new venv
# (a temporary directory, removed afterwards), prints the versions it resolved, then
# runs lint (ruff), types (mypy), module layering (lint-imports), the unit and
# integration tests (pytest, against the local sandbox clouds: most on two workers,
# then the timing tests alone), and last every README command (scripts/readme-check,
# in a virtualenv of its own).
#
#   bash scripts/test.sh                  # everything; CI runs exactly this (.ci/run)
#   bash scripts/test.sh tests/unit -x    # arguments go to pytest; no README check then
set -euo pipefail
cd "$(dirname "$0")/.."

# A real PostgreSQL server for the team-state tests (tests/postgres.py starts a throwaway one).
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql </dev/null >/dev/null
)
# A real sshd per sandbox server for the software-deployment tests (tests/integration/test_ssh_deploy.py).
command -v sshd >/dev/null || test -x /usr/sbin/sshd || (
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-server </dev/null >/dev/null
)

venv=$(mktemp -d "${TMPDIR:-/tmp}/cloudtmpl-test-venv.XXXXXX")
trap 'rm -rf "$venv"' EXIT
chmod 755 "$venv"
echo "== fresh virtualenv $venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
py="$venv/bin/python"
"$py" -c 'import importlib.metadata as m, platform
print("== resolved: python", platform.python_version(),
      *(f"{p} {m.version(p)}" for p in ("moto", "boto3", "botocore", "apache-libcloud")))'

echo "== ruff"
"$py" -m ruff check cloudtmpl cloudtmpl_sandbox tests bench scripts/readme-check
echo "== mypy"
"$py" -m mypy
echo "== import layers (pyproject.toml's import-linter contract)"
"$venv/bin/lint-imports"
echo "== pytest"
status=0
whole=$(( $# == 0 ))
# The whole suite in two parts. Most of it on two workers (pytest-xdist; each worker
# has sandbox clouds, PostgreSQL servers and sshds of its own, and a file's tests stay
# on one worker); then, with the machine to themselves, the tests that measure
# behaviour in time (SIGKILL at random moments or in the middle of a scale-out,
# signals and grace periods, lock fencing, rolling health gates, lock hand-overs),
# which a busy neighbour could skew.
# Each part names its slowest tests: where to look when CI nears its 20 minutes.
SERIAL=(tests/torture tests/integration/test_fencing.py tests/integration/test_deploy_bounds.py
        tests/integration/test_interrupts.py tests/integration/test_create_before_destroy.py
        tests/integration/test_rolling_update.py tests/integration/test_state_postgres.py
        tests/integration/test_ssh_deploy.py tests/integration/test_scaling_group.py)
if [ "$whole" = 1 ]; then
  "$py" -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15 \
    "${SERIAL[@]/#/--ignore=}" || status=$?
  echo "== pytest: the timing tests, alone"
  "$py" -m pytest -q -p no:cacheprovider --durations=10 "${SERIAL[@]}" || status=$?
else
  "$py" -m pytest -q -p no:cacheprovider "$@" || status=$?
fi
if [ "$whole" = 1 ]; then
  echo "== README commands (scripts/readme-check)"
  "$py" scripts/readme-check || status=1
fi
exit "$status"
