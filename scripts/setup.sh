#!/usr/bin/env bash
# Set up nifkit's virtual environment in <repo>/.venv. Safe to run again and again.
#
#   bash scripts/setup.sh          # test profile: library + lab + book + test tools (+ Chromium)
#   bash scripts/setup.sh lab      # lab profile: library + JupyterLab
#   bash scripts/setup.sh book     # book profile: lab + the course book (Sphinx, myst-nb; pip only)
#
# Versions come from requirements/pins.txt (used as pip constraints). The install is
# skipped when pyproject.toml and requirements/pins.txt are unchanged since the last
# successful run (a stamp with their hash lives inside .venv).
#
# Environment: NIFKIT_PYTHON=/path/to/python3 to choose the interpreter (>= 3.10);
#              NIFKIT_CHROMIUM=/path/to/chromium to use another Chromium binary.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROFILE="${1:-test}"
case "$PROFILE" in
  test|lab|book) ;;
  *) echo "usage: bash scripts/setup.sh [test|lab|book]" >&2; exit 2 ;;
esac

VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
PINS="$ROOT/requirements/pins.txt"
CHROMIUM="${NIFKIT_CHROMIUM:-/usr/bin/chromium}"

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

as_root() {
  # run a command as root: directly, or through sudo without a password prompt
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

ok_python() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1
}

find_python() {
  if [ -n "${NIFKIT_PYTHON:-}" ]; then
    ok_python "$NIFKIT_PYTHON" || die "NIFKIT_PYTHON=$NIFKIT_PYTHON is not a Python >= 3.10"
    echo "$NIFKIT_PYTHON"; return
  fi
  local c
  for c in python3 python3.13 python3.12 python3.11 python3.10 python; do
    if command -v "$c" >/dev/null 2>&1 && ok_python "$c"; then command -v "$c"; return; fi
  done
  die "no Python >= 3.10 found on PATH (install one, or set NIFKIT_PYTHON=/path/to/python3)"
}

# ---------------------------------------------------------------- the virtual env
if [ -x "$VPY" ] && ! "$VPY" -c 'import sys' >/dev/null 2>&1; then
  say ".venv is broken (its Python no longer runs); recreating it"
  rm -rf "$VENV"
fi
if [ -x "$VPY" ] && ! ok_python "$VPY"; then
  die ".venv uses a Python older than 3.10; remove $VENV and run again"
fi
if [ ! -x "$VPY" ]; then
  PY="$(find_python)"
  say "creating .venv with $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
  if ! "$PY" -m venv "$VENV"; then
    rm -rf "$VENV"
    # Debian/Ubuntu ship venv separately
    VENV_PKG="python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    if command -v apt-get >/dev/null 2>&1 && as_root true; then
      say "installing $VENV_PKG with apt-get"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$VENV_PKG"
      "$PY" -m venv "$VENV" || die "could not create $VENV"
    else
      die "could not create $VENV: '$PY -m venv' failed (on Debian/Ubuntu: apt-get install $VENV_PKG)"
    fi
  fi
fi

# ---------------------------------------------------------------- packages
HASH="$("$VPY" - "$ROOT/pyproject.toml" "$PINS" <<'PYEOF'
import hashlib, sys
h = hashlib.sha256()
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        h.update(f.read())
print(h.hexdigest())
PYEOF
)"

stamp_ok() {  # stamp_ok PROFILE: that profile was installed from these very files
  [ -f "$VENV/.nifkit-setup-$1" ] && [ "$(cat "$VENV/.nifkit-setup-$1")" = "$HASH" ]
}
installed() {
  "$VPY" -c 'import importlib.metadata as m; m.version("nifkit")' >/dev/null 2>&1
}

# the test profile includes the lab and book profiles, the book profile the lab profile
if installed && { stamp_ok "$PROFILE" || { [ "$PROFILE" != test ] && stamp_ok test; } ||
                  { [ "$PROFILE" = lab ] && stamp_ok book; }; }; then
  say ".venv is up to date (profile $PROFILE)"
else
  say "installing nifkit[$PROFILE] with the pins of requirements/pins.txt"
  T0=$(date +%s)
  PIP_ARGS=()
  [ -t 1 ] || PIP_ARGS+=(--progress-bar off)
  # (the long list of already-satisfied requirements is filtered out; errors still show)
  EXTRAS="$PROFILE"
  [ "$PROFILE" = book ] && EXTRAS="lab,book"
  "$VPY" -m pip install ${PIP_ARGS[@]+"${PIP_ARGS[@]}"} -c "$PINS" -e "$ROOT[$EXTRAS]" 2>&1 |
    { grep -v '^Requirement already satisfied' || true; }
  # torch and torchvision must import and compute on this machine (CPU is enough)
  "$VPY" -c 'import torch, torchvision; x = torch.ones(2, 2) @ torch.ones(2, 2); assert float(x.sum()) == 8.0; print("setup: torch", torch.__version__, "torchvision", torchvision.__version__, "OK")'
  rm -f "$VENV"/.nifkit-setup-*
  echo "$HASH" > "$VENV/.nifkit-setup-$PROFILE"
  say "packages installed in $(( $(date +%s) - T0 )) s"
fi

# ---------------------------------------------------------------- Chromium (browser tests)
if [ "$PROFILE" = test ] && [ ! -x "$CHROMIUM" ]; then
  if [ "$CHROMIUM" = /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && as_root true; then
    say "installing Debian's chromium for the browser tests (apt-get)"
    if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq &&
           as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium; }; then
      say "WARNING: apt-get could not install chromium"
    fi
  fi
  if [ ! -x "$CHROMIUM" ]; then
    echo "setup: WARNING: $CHROMIUM is missing. The browser tests (tests/test_browser.py) need it:" >&2
    echo "setup:          run 'sudo apt-get install chromium' (Debian/Ubuntu), or set NIFKIT_CHROMIUM" >&2
    echo "setup:          to a Chromium binary. They will fail until then." >&2
  fi
fi

# ---------------------------------------------------------------- FashionMNIST (offline data)
# Debian ships FashionMNIST's files; chapter 4 and tests/test_data.py use them when present.
FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [ "$PROFILE" = test ] && [ ! -d "$FMNIST_DIR" ] && command -v apt-get >/dev/null 2>&1 && as_root true; then
  say "installing Debian's dataset-fashion-mnist (offline FashionMNIST)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq dataset-fashion-mnist ||
    { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq dataset-fashion-mnist; } ||
    say "WARNING: apt-get could not install dataset-fashion-mnist (chapter 4 then uses digits only)"
fi

say "done ($VPY)"
