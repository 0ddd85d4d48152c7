#!/usr/bin/env bash
# Build the course book: every chapter with its executed outputs, as a static HTML site.
#
#   bash scripts/book.sh [student|instructor|both] [--rerun]
#
# student (default): exercises with a cell to fill in, no solutions;
# instructor: every solution shown, plus the course plan (docs/course.md).
# The site lands in build/book/<edition>/html; view it with the command printed at the end.
# Chapters are executed in fast mode, or taken from the notebook tests' executed copies
# (tests/reports/executed/) when those are up to date; --rerun executes them again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh" book
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/book.py" "$@"
