#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: lint, types, module
# layering, unit and integration tests (against the local sandbox clouds).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
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

echo "== ruff"
python3 -m ruff check cloudtmpl tests bench
echo "== mypy"
python3 -m mypy
echo "== import layers (DESIGN section 2)"
lint-imports
echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"
