"""What the test suite needs beside its Python packages, and where each thing comes from.

One list, read two ways, so both name a missing thing the same way:

- ``scripts/check.sh`` runs this file as a script before it installs anything
  (``python tests/support/requirements.py``: Python, ``node``, ``npm``, the
  shared OpenAPI files) and again, with the virtual environment's Python,
  after ``npm ci --prefix tests`` and its redis-server and Chromium steps
  (``--installed``: the npm packages, ``redis-server``, ``chromium``,
  ``chromedriver`` and ``selenium`` too). It prints every missing thing and
  exits 1.
- The Firestore emulator, Prism, Redis and browser fixtures call
  `for_firestore_emulator()`, `for_prism()`, `for_redis_server()` and
  `for_browser()` and fail the test with the messages (never skip).

Standard library only: the check runs it before the virtual environment exists.

Twilio's OpenAPI description is read from ``TWILIO_OAI_DIR``, by default
``../shared/twilio-oai`` (the shared folder beside the clone); a relative path
is taken from the project root.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = TESTS_DIR.parent
NODE_MODULES = TESTS_DIR / "node_modules"
FIRESTORE_EMULATOR_PACKAGES = (
    NODE_MODULES / "@firestore-emulator" / "server",
    NODE_MODULES / "@grpc" / "grpc-js",
)
PRISM = NODE_MODULES / ".bin" / "prism"
SPEC_DIR_VARIABLE = "TWILIO_OAI_DIR"
DEFAULT_SPEC_DIR = "../shared/twilio-oai"
SPEC_NAMES = ("twilio_api_v2010.prism.json", "twilio_api_v2010.prism-errors.json")
REDIS_SERVER = "redis-server"
# Executable -> the Debian package that installs it.
BROWSER_PROGRAMS = {"chromium": "chromium", "chromedriver": "chromium-driver"}
MIN_PYTHON = (3, 11)
MIN_NODE = 20

_NPM_CI = (
    "pinned in tests/package-lock.json and installed by `npm ci --prefix tests`"
    " (scripts/check.sh runs it)"
)


def _shown(path: Path) -> str:
    """``path`` as a reader of the project finds it: from the project root when near it."""
    for base, prefix in ((PROJECT_ROOT, ""), (PROJECT_ROOT.parent, "../")):
        if base == Path(base.anchor):
            continue  # a clone at / would show every path as ../something
        try:
            return prefix + str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


def spec_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder of Twilio's OpenAPI description: ``TWILIO_OAI_DIR``, else ../shared/twilio-oai."""
    configured = Path(environ.get(SPEC_DIR_VARIABLE) or DEFAULT_SPEC_DIR)
    # normpath, not resolve(): a symlinked ../shared keeps its name in messages.
    return Path(os.path.normpath(PROJECT_ROOT / configured))


def python_problems(version: tuple[int, ...] = tuple(sys.version_info)) -> list[str]:
    """Python older than 3.11."""
    if tuple(version[:2]) >= MIN_PYTHON:
        return []
    shown = ".".join(str(part) for part in version[:3])
    return [
        f"Python {shown} ({sys.executable}) is too old: servio-twilio needs Python 3.11 or"
        " newer (point PYTHON at one: `PYTHON=python3.11 bash scripts/check.sh`)"
    ]


def node_problems(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``node`` missing from PATH, or older than Node.js 20."""
    node = shutil.which("node", path=environ.get("PATH"))
    if node is None:
        return [
            "node not found on PATH: the Firestore emulator and Prism (Twilio's OpenAPI as a"
            " mock) run on Node.js 20 or newer (https://nodejs.org, or Debian's nodejs package)"
        ]
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"{node} --version failed ({exc}): the test servers need Node.js 20 or newer"]
    match = re.match(r"v?(\d+)\.", version)
    if match is None or int(match.group(1)) < MIN_NODE:
        return [
            f"{node} is Node.js {version or '(no version)'}: the Firestore emulator and Prism"
            f" need Node.js {MIN_NODE} or newer (https://nodejs.org)"
        ]
    return []


def npm_problems(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``npm`` missing from PATH."""
    if shutil.which("npm", path=environ.get("PATH")) is None:
        return [
            "npm not found on PATH: scripts/check.sh installs the test servers' npm packages"
            " with `npm ci --prefix tests` (npm ships with Node.js 20)"
        ]
    return []


def spec_problems(
    names: tuple[str, ...] = SPEC_NAMES, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """The OpenAPI files Prism serves, when missing."""
    folder = spec_dir(environ)
    return [
        f"{_shown(folder / name)} not found: the Prism contract tests serve Twilio's OpenAPI"
        f" description from the shared folder beside the clone ({DEFAULT_SPEC_DIR}, or"
        f" {SPEC_DIR_VARIABLE}; see README and {DEFAULT_SPEC_DIR}/README.md)"
        for name in names
        if not (folder / name).is_file()
    ]


def firestore_emulator_package_problems() -> list[str]:
    """The npm packages ``tests/firestore_emulator.js`` runs, when missing."""
    return [
        f"{_shown(package)} not found: the Firestore emulator is an npm package, {_NPM_CI}"
        for package in FIRESTORE_EMULATOR_PACKAGES
        if not package.is_dir()
    ]


def prism_package_problems() -> list[str]:
    """Prism's executable, when missing."""
    if PRISM.exists():
        return []
    return [f"{_shown(PRISM)} not found: Prism is the npm package @stoplight/prism-cli, {_NPM_CI}"]


def redis_server_problems(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``redis-server`` missing from PATH (the shared-limit tests run a real Redis)."""
    if shutil.which(REDIS_SERVER, path=environ.get("PATH")) is None:
        return [
            f"{REDIS_SERVER} not found on PATH: the shared-limit tests run a real Redis, Debian's"
            " redis-server package (`apt-get install -y redis-server`; scripts/check.sh installs"
            " it when run as root)"
        ]
    return []


def browser_problems(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``chromium`` or ``chromedriver`` missing from PATH (the console's browser tests)."""
    return [
        f"{program} not found on PATH: the console's browser tests drive a headless Chromium,"
        f" Debian's {package} package (`apt-get install -y chromium chromium-driver`;"
        " scripts/check.sh installs them when run as root)"
        for program, package in BROWSER_PROGRAMS.items()
        if shutil.which(program, path=environ.get("PATH")) is None
    ]


def selenium_problems(module: str = "selenium") -> list[str]:
    """The ``selenium`` package missing from the running Python."""
    if importlib.util.find_spec(module) is not None:
        return []
    return [
        f"{module} is not installed in {sys.executable}: the console's browser tests drive"
        " Chromium with it (the test dependency group: `pip install --group dev`;"
        " scripts/check.sh installs it)"
    ]


def before_install(environ: Mapping[str, str] = os.environ) -> list[str]:
    """What must be there before the check installs anything: Python, node, npm, the spec."""
    return [
        *python_problems(),
        *node_problems(environ),
        *npm_problems(environ),
        *spec_problems(environ=environ),
    ]


def everything(environ: Mapping[str, str] = os.environ) -> list[str]:
    """`before_install()`, the npm packages ``npm ci --prefix tests`` installs,
    ``redis-server``, ``chromium`` and ``chromedriver`` (scripts/check.sh installs
    them with apt-get when run as root) and ``selenium`` (in the venv)."""
    return [
        *before_install(environ),
        *firestore_emulator_package_problems(),
        *prism_package_problems(),
        *redis_server_problems(environ),
        *browser_problems(environ),
        *selenium_problems(),
    ]


def for_firestore_emulator(environ: Mapping[str, str] = os.environ) -> list[str]:
    """What the ``firestore_emulator`` fixture needs and is missing."""
    return [*node_problems(environ), *firestore_emulator_package_problems()]


def for_redis_server(environ: Mapping[str, str] = os.environ) -> list[str]:
    """What the ``redis_server`` fixture needs and is missing."""
    return redis_server_problems(environ)


def for_browser(environ: Mapping[str, str] = os.environ) -> list[str]:
    """What the ``browser`` fixture needs and is missing."""
    return [*browser_problems(environ), *selenium_problems()]


def for_prism(spec_name: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """What Prism serving ``spec_name`` needs and is missing."""
    return [
        *node_problems(environ),
        *prism_package_problems(),
        *spec_problems((spec_name,), environ),
    ]


def main(argv: list[str]) -> int:
    """Print every missing thing to stderr; 1 if any is missing, else 0."""
    if argv not in ([], ["--installed"]):
        print("usage: python tests/support/requirements.py [--installed]", file=sys.stderr)
        return 2
    problems = everything() if argv else before_install()
    for problem in problems:
        print(f"missing: {problem}", file=sys.stderr)
    if problems:
        print(
            f"{len(problems)} thing(s) the test suite needs are missing (see above);"
            " the check fails rather than skip the tests that need them.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
