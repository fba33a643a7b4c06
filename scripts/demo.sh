#!/usr/bin/env bash
# Set up and run the offline demo: a virtual environment with the package,
# then `python -m servio_twilio demo` (in-memory repository, FakeTwilio, a real
# webhook server on 127.0.0.1). Arguments go to the demo, e.g. --json, or
# --serve to keep the webhook app and an operator console running until Ctrl-C.
#
#   bash scripts/demo.sh [--json] [--serve]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[console]" >&2
exec "$VENV/bin/python" -m servio_twilio demo "$@"
