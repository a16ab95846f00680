#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: lint, types, module
# layering, unit and integration tests (against the local sandbox clouds).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
python3 -m ruff check cloudtmpl tests bench
echo "== mypy"
python3 -m mypy
echo "== import layers (DESIGN section 2)"
lint-imports
echo "== pytest"
python3 -m pytest -q -p no:cacheprovider "$@"
