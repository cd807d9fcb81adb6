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
