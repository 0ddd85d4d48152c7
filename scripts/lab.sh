#!/usr/bin/env bash
# Set up nifkit (lab profile) and open the chapters in JupyterLab.
#
#   bash scripts/lab.sh [extra jupyter-lab arguments, e.g. --port=8899]
#
# JupyterLab runs from .venv, so the notebooks' "Python 3" kernel is the venv's Python.
# It listens on 127.0.0.1 only and prints the URL with its token; on a machine without
# a display it does not try to open a browser (use an SSH tunnel, e.g.
# ssh -L 8888:127.0.0.1:8888 host, then open the printed URL).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/setup.sh" lab

ARGS=(--ip=127.0.0.1 "--ServerApp.root_dir=$ROOT/notebooks")
if [ "$(uname -s)" != Darwin ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  ARGS+=(--no-browser)
fi
# Jupyter refuses to run as root unless told (containers, CI, fresh cloud machines)
if [ "$(id -u)" -eq 0 ]; then
  ARGS+=(--allow-root)
fi

# The venv's own "python3" kernelspec first, so a user-level kernelspec of another Python
# cannot shadow it: the chapters then always run in .venv's Python.
export JUPYTER_PATH="$ROOT/.venv/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"

echo "lab: starting JupyterLab on the chapters in $ROOT/notebooks"
echo "lab: open the http://127.0.0.1:...?token=... URL printed below; stop with Ctrl-C"
# JupyterLab logs to stderr; send it to stdout too so the URL is never lost in a pipe
exec "$ROOT/.venv/bin/jupyter" lab "${ARGS[@]}" "$@" 2>&1
