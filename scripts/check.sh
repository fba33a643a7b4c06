#!/usr/bin/env bash
# Set up and run every check on a fresh machine: a virtual environment of its
# own with the package and its development dependency groups, the test
# servers' npm packages, then ruff, mypy --strict, the whole pytest suite
# (Firestore emulator and Prism included) and the strict docs build.
#
#   bash scripts/check.sh [pytest arguments...]
#
# Needs beside the clone: Python >= 3.11 ($PYTHON, default python3), Node.js
# >= 20 with npm, Twilio's OpenAPI description in ../shared/twilio-oai
# ($TWILIO_OAI_DIR), redis-server, chromium and chromedriver (Debian's
# redis-server, chromium and chromium-driver, installed with apt-get when run
# as root). Anything missing fails the check, named with where it comes from
# (tests/support/requirements.py); no test skips.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# Read by tests/support/requirements.py (a relative path is from the project root).
export TWILIO_OAI_DIR=${TWILIO_OAI_DIR:-../shared/twilio-oai}

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf '\ncheck failed: %s\n' "$*" >&2
    exit 1
}

step "what the check needs beside the clone (Python >= 3.11, Node.js >= 20 and npm, $TWILIO_OAI_DIR)"
command -v "$PYTHON" >/dev/null \
    || fail "$PYTHON not found: the check needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"
"$PYTHON" tests/support/requirements.py || fail "missing requirements, listed above; nothing was installed"

step "virtual environment in $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# pip >= 25.1 installs PEP 735 dependency groups (--group).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[firestore]" --group dev

step "npm packages for the test servers (tests/package-lock.json)"
npm ci --prefix tests --no-audit --no-fund --loglevel=error

step "redis-server for the shared-limit tests (Debian's redis-server package)"
if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        fail "redis-server not found: install Debian's redis-server package" \
            "(sudo apt-get install -y redis-server), or run the check as root to have it installed"
    fi
fi

step "chromium and chromedriver for the console's browser tests (Debian's chromium, chromium-driver)"
browser_packages=""
command -v chromium >/dev/null || browser_packages=" chromium"
command -v chromedriver >/dev/null || browser_packages="$browser_packages chromium-driver"
if [ -n "$browser_packages" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        # shellcheck disable=SC2086 # one word per package
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $browser_packages >/dev/null
    else
        fail "chromium or chromedriver not found: install Debian's package(s)$browser_packages" \
            "(sudo apt-get install -y chromium chromium-driver), or run the check as root to have" \
            "them installed"
    fi
fi
"$VENV/bin/python" tests/support/requirements.py --installed \
    || fail "missing requirements after npm ci and the redis-server and chromium steps, listed above"

step "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

step "mypy --strict"
"$VENV/bin/mypy"

step "pytest"
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    fail "pytest collected no tests (exit 5): check the arguments ($*) and tests/"
elif [ "$status" -ne 0 ]; then
    fail "pytest failed (exit $status)"
fi

step "mkdocs build --strict"
export NO_MKDOCS_2_WARNING=1
"$VENV/bin/mkdocs" build --strict --quiet --site-dir "$(mktemp -d)"

step "all checks passed"
