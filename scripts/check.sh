#!/usr/bin/env bash
# Set up and run every check on a fresh machine: a virtual environment of its
# own with the package and its development extras, the test servers' npm
# packages, then ruff, mypy --strict, the whole pytest suite (Firestore
# emulator and Prism included) and the strict docs build.
#
#   bash scripts/check.sh [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

step() { printf '\n==> %s\n' "$*"; }

step "virtual environment in $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"

step "npm packages for the test servers (tests/package-lock.json)"
npm ci --prefix tests --no-audit --no-fund --loglevel=error

step "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

step "mypy --strict"
"$VENV/bin/mypy"

step "pytest"
# pytest exits 5 when it collected no test: set -e turns that into a failure.
"$VENV/bin/python" -m pytest "$@"

step "mkdocs build --strict"
export NO_MKDOCS_2_WARNING=1
"$VENV/bin/mkdocs" build --strict --quiet --site-dir "$(mktemp -d)"

step "all checks passed"
