#!/usr/bin/env bash
# Build the course book: every chapter with its executed outputs, as a static HTML site.
#
#   bash scripts/book.sh [student|instructor|both] [--rerun]
#
# student (default): exercises with a cell to fill in, no solutions;
# instructor: every solution (folded), plus the course plan (docs/course.md);
# both: the two editions.
# Sphinx with myst-nb and sphinx-book-theme (the Jupyter Book 1 stack), offline: pip
# packages only. The site lands in build/book/<edition>/html; view it with the command
# printed at the end. The chapters' outputs are the notebook tests' executed copies
# (tests/reports/executed/) when those are up to date, else the chapters are executed
# here (fast mode); --rerun executes them again. See scripts/book.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh" book
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/book.py" "$@"
