# Sourced by the scripts: make sure .venv exists and holds the project.
# Usage: ensure_venv [EXTRAS]   e.g. ensure_venv test
ensure_venv() {
  local extras="${1:-}"
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.11 python3 python; do
      if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
    done
  fi
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "TokenLedger needs Python 3.11 or newer" >&2
    exit 1
  fi
  local spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
}

# The browser tests drive Debian's Chromium (Playwright cannot download its own build here).
# Installed with apt when missing and we may (root, or sudo without a password); otherwise
# the browser tests say why they cannot run.
ensure_chromium() {
  local binary="${TOKENLEDGER_CHROMIUM:-/usr/bin/chromium}"
  [ -x "$binary" ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "note: $binary is missing and installing it needs root: the browser tests will not run" >&2
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: $binary is missing and there is no apt-get: the browser tests will not run" >&2
    return 0
  fi
  echo "== installing chromium (for the browser tests)"
  if ! { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; }; then
    echo "note: installing chromium failed: the browser tests will not run" >&2
  fi
}
