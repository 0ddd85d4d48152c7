#!/usr/bin/env bash
# Set up nifkit (test profile) and run the whole test suite: unit, reference, widget,
# notebook (every chapter executed in full mode, measured; README.md's chapter table is
# rewritten from those runs), restart safety and browser (JupyterLab in Chromium, fast mode).
#
#   bash scripts/test.sh [extra pytest arguments, e.g. -k primer -x]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

T0=$(date +%s)
bash "$ROOT/scripts/setup.sh" test
T1=$(date +%s)
echo "test: setup took $(( T1 - T0 )) s"

set +e
"$ROOT/.venv/bin/python" -m pytest -ra --durations=25 "$@"
RC=$?
set -e
T2=$(date +%s)
echo "test: pytest took $(( T2 - T1 )) s (exit code $RC); total $(( T2 - T0 )) s"

if [ "$RC" -eq 5 ]; then
  echo "test: FAILED: pytest collected no tests (exit code 5); nothing was checked" >&2
  exit 1
fi
exit "$RC"
