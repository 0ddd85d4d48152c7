#!/usr/bin/env bash
# Set up nifkit (lab profile) and open a working copy of the chapters in JupyterLab.
#
#   bash scripts/lab.sh [--student|--full] [--refresh] [extra jupyter-lab arguments, e.g. --port=8899]
#
# The chapters are copied to workspace/ (ignored by git) on first use, and JupyterLab
# opens there: running and editing them never touches the tracked notebooks/.
#   --student  switch to the student edition (each solution replaced by a cell to fill in);
#              on an existing workspace every copy is replaced, the ones you ran or edited
#              backed up first to workspace/.backup/<time>/. The workspace remembers it.
#   --full     switch back to the full edition (with the solutions), the same way
#   --refresh  bring the working copy up to date with notebooks/; every copy you ran or
#              edited is first backed up to workspace/.backup/<time>/ (nothing is lost)
# New chapters are copied in on every start; existing copies are only replaced with --refresh.
#
# JupyterLab runs from .venv, so the notebooks' "Python 3" kernel is the venv's Python.
# It listens on 127.0.0.1 only and prints the URL with its token; on a machine without
# a display it does not try to open a browser (use an SSH tunnel, e.g.
# ssh -L 8888:127.0.0.1:8888 host, then open the printed URL).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORKSPACE="${NIFKIT_WORKSPACE:-$ROOT/workspace}"

SYNC_ARGS=()
LAB_ARGS=()
PORT=""
for arg in "$@"; do
  case "$arg" in
    --student|--full|--refresh) SYNC_ARGS+=("$arg") ;;
    --port=*|--ServerApp.port=*) PORT="${arg#*=}"; LAB_ARGS+=("$arg") ;;
    *) LAB_ARGS+=("$arg") ;;
  esac
done

# (tests/test_workspace.py runs this script with the test's own venv and set-up done:
#  NIFKIT_SKIP_SETUP=1 NIFKIT_VENV=/path/to/venv)
VENV="${NIFKIT_VENV:-$ROOT/.venv}"
if [ -z "${NIFKIT_SKIP_SETUP:-}" ]; then
  bash "$ROOT/scripts/setup.sh" lab
fi
VPY="$VENV/bin/python"

"$VPY" "$ROOT/scripts/course.py" workspace --dir "$WORKSPACE" ${SYNC_ARGS[@]+"${SYNC_ARGS[@]}"}

# Lab settings for every user of this .venv: no "news" pop-up and no update check (no
# request to a website), and widget state saved in the notebook, so a reopened chapter
# shows its explorers' last state instead of "Error displaying widget: model not found".
SETTINGS="$VENV/share/jupyter/lab/settings"
mkdir -p "$SETTINGS"
cat > "$SETTINGS/overrides.json" <<'JSON'
{
  "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false},
  "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": true}
}
JSON

if [ -z "$PORT" ]; then
  PORT="$("$VPY" - <<'PYEOF'
import socket
for port in range(8888, 8988):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
PYEOF
)"
  LAB_ARGS+=("--ServerApp.port=$PORT" "--ServerApp.port_retries=0")
fi
TOKEN="$("$VPY" -c 'import secrets; print(secrets.token_hex(24))')"

ARGS=(--ip=127.0.0.1 "--ServerApp.root_dir=$WORKSPACE" "--IdentityProvider.token=$TOKEN"
      --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate)
if [ "$(uname -s)" != Darwin ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  ARGS+=(--no-browser)
fi
# Jupyter refuses to run as root unless told (containers, CI, fresh cloud machines)
if [ "$(id -u)" -eq 0 ]; then
  ARGS+=(--allow-root)
fi

# The venv's own "python3" kernelspec first, so a user-level kernelspec of another Python
# cannot shadow it: the chapters then always run in .venv's Python.
export JUPYTER_PATH="$VENV/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"

echo "lab: JupyterLab on your working copy of the chapters: $WORKSPACE"
echo "lab: open  http://127.0.0.1:$PORT/lab?token=$TOKEN"
echo "lab: stop with Ctrl-C"
# JupyterLab logs to stderr; send it to stdout too so the URL is never lost in a pipe
exec "$VENV/bin/jupyter" lab "${ARGS[@]}" ${LAB_ARGS[@]+"${LAB_ARGS[@]}"} 2>&1
