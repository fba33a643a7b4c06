"""What the suite needs beside the clone: a missing piece fails, naming itself and its source.

`support.requirements` is what ``scripts/check.sh`` runs before installing
anything and what the Firestore emulator and Prism fixtures call; these
tests point it at missing things and read the messages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import requirements
from support.processes import require

SCRIPT = Path(requirements.__file__)


def fake_node(folder: Path, version: str) -> None:
    node = folder / "node"
    node.write_text(f"#!/bin/sh\necho {version}\n")
    node.chmod(0o755)


class TestSpec:
    def test_default_is_the_shared_folder_beside_the_clone(self) -> None:
        """Without TWILIO_OAI_DIR the spec is read from ../shared/twilio-oai."""
        shared = requirements.PROJECT_ROOT.parent / "shared" / "twilio-oai"
        assert requirements.spec_dir({}) == shared

    def test_relative_dir_is_from_the_project_root(self) -> None:
        """A relative TWILIO_OAI_DIR is taken from the project root, wherever pytest runs."""
        folder = requirements.spec_dir({"TWILIO_OAI_DIR": "elsewhere/oai"})
        assert folder == requirements.PROJECT_ROOT / "elsewhere" / "oai"

    def test_missing_spec_names_the_file_and_where_it_comes_from(self, tmp_path: Path) -> None:
        """Each missing OpenAPI file is named, with the shared folder it comes from."""
        problems = requirements.spec_problems(environ={"TWILIO_OAI_DIR": str(tmp_path)})
        assert len(problems) == 2
        for problem, name in zip(problems, requirements.SPEC_NAMES, strict=True):
            assert problem.startswith(f"{tmp_path / name} not found: the Prism contract tests")
            assert "Twilio's OpenAPI description from the shared folder beside the clone" in problem
            assert "../shared/twilio-oai" in problem
            assert "README" in problem

    def test_present_spec_is_no_problem(self, tmp_path: Path) -> None:
        """With both files there, nothing is reported."""
        for name in requirements.SPEC_NAMES:
            (tmp_path / name).write_text("{}")
        assert requirements.spec_problems(environ={"TWILIO_OAI_DIR": str(tmp_path)}) == []


class TestNode:
    def test_missing_node(self, tmp_path: Path) -> None:
        """No node on PATH: the message says the test servers need Node.js 20."""
        problems = requirements.node_problems({"PATH": str(tmp_path)})
        assert len(problems) == 1
        assert problems[0].startswith("node not found on PATH: the Firestore emulator and Prism")
        assert "Node.js 20 or newer" in problems[0]

    def test_old_node(self, tmp_path: Path) -> None:
        """Node.js 18 is named as too old."""
        fake_node(tmp_path, "v18.19.0")
        (problem,) = requirements.node_problems({"PATH": str(tmp_path)})
        assert "Node.js v18.19.0" in problem
        assert "need Node.js 20 or newer" in problem

    def test_node_20(self, tmp_path: Path) -> None:
        """Node.js 20 is enough."""
        fake_node(tmp_path, "v20.0.0")
        assert requirements.node_problems({"PATH": str(tmp_path)}) == []

    def test_missing_npm(self, tmp_path: Path) -> None:
        """No npm on PATH: the message names the npm ci that needs it."""
        (problem,) = requirements.npm_problems({"PATH": str(tmp_path)})
        assert problem.startswith("npm not found on PATH")
        assert "npm ci --prefix tests" in problem


class TestBrowser:
    def test_missing_chromium_and_chromedriver_name_their_debian_packages(
        self, tmp_path: Path
    ) -> None:
        """Neither on PATH: one message each, naming the Debian package and apt-get."""
        problems = requirements.browser_problems({"PATH": str(tmp_path)})
        assert len(problems) == 2
        chromium, driver = problems
        assert chromium.startswith("chromium not found on PATH: the console's browser tests")
        assert "Debian's chromium package" in chromium
        assert driver.startswith("chromedriver not found on PATH")
        assert "Debian's chromium-driver package" in driver
        for problem in problems:
            assert "apt-get install -y chromium chromium-driver" in problem
            assert "scripts/check.sh installs them when run as root" in problem

    def test_a_missing_driver_alone_is_named(self, tmp_path: Path) -> None:
        """Chromium there, its driver not: only chromium-driver is reported."""
        chromium = tmp_path / "chromium"
        chromium.write_text("#!/bin/sh\n")
        chromium.chmod(0o755)
        (problem,) = requirements.browser_problems({"PATH": str(tmp_path)})
        assert problem.startswith("chromedriver not found on PATH")

    def test_missing_selenium_names_the_dependency_group(self) -> None:
        """A Python without selenium: the message names it, this Python and the dev group."""
        (problem,) = requirements.selenium_problems("no_such_selenium_module")
        assert problem.startswith(f"no_such_selenium_module is not installed in {sys.executable}")
        assert "pip install --group dev" in problem

    def test_the_browser_fixture_needs_all_three(self, tmp_path: Path) -> None:
        """What the browser fixture checks: chromium, chromedriver (and selenium, here present)."""
        problems = requirements.for_browser({"PATH": str(tmp_path)})
        assert [problem.split(" ", 1)[0] for problem in problems] == ["chromium", "chromedriver"]
        assert requirements.selenium_problems() == []

    def test_the_installed_check_lists_the_browser(self, tmp_path: Path) -> None:
        """``requirements.py --installed`` (scripts/check.sh's second run) reports a missing
        chromium and chromedriver, exits 1."""
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--installed"],
            env={"PATH": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "missing: chromium not found on PATH" in result.stderr
        assert "missing: chromedriver not found on PATH" in result.stderr

    def test_the_fixture_fails_rather_than_skips(self) -> None:
        """A missing browser is a failure naming the Debian packages, never a skip."""
        problems = requirements.browser_problems({"PATH": ""})
        with pytest.raises(pytest.fail.Exception, match=r"Chromium unavailable: chromium not"):
            require("Chromium", problems)


class TestPython:
    def test_old_python(self) -> None:
        """Python 3.10 is named as too old."""
        (problem,) = requirements.python_problems((3, 10, 14))
        assert problem.startswith("Python 3.10.14")
        assert "needs Python 3.11 or newer" in problem

    def test_this_python(self) -> None:
        """The Python running the suite is new enough."""
        assert requirements.python_problems() == []


class TestFixturesFail:
    def test_require_fails_rather_than_skips(self) -> None:
        """A fixture's missing requirement is a failure carrying every message, never a skip."""
        with pytest.raises(pytest.fail.Exception, match=r"Prism unavailable: one; two"):
            require("Prism", ["one", "two"])

    def test_prism_fixture_needs_the_spec(self, tmp_path: Path) -> None:
        """What the Prism fixture checks includes the spec it serves."""
        problems = requirements.for_prism(
            "twilio_api_v2010.prism.json", {"TWILIO_OAI_DIR": str(tmp_path), "PATH": ""}
        )
        assert any("node not found" in problem for problem in problems)
        assert any(
            problem.startswith(f"{tmp_path / 'twilio_api_v2010.prism.json'} not found")
            for problem in problems
        )

    def test_require_nothing_missing(self) -> None:
        """Nothing missing: the fixture goes on."""
        assert require("Prism", []) is None


class TestScript:
    def test_check_preflight_fails_on_a_missing_spec(self, tmp_path: Path) -> None:
        """``python tests/support/requirements.py``, as scripts/check.sh runs it, exits 1
        and prints what is missing."""
        missing = tmp_path / "no-twilio-oai"
        result = subprocess.run(
            [sys.executable, str(SCRIPT)],
            env={"PATH": "/usr/bin:/bin", "TWILIO_OAI_DIR": str(missing)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert f"missing: {missing / 'twilio_api_v2010.prism.json'} not found" in result.stderr
        assert "the check fails rather than skip" in result.stderr

    def test_unknown_argument(self) -> None:
        """Anything but ``--installed`` is a usage error."""
        assert requirements.main(["--bogus"]) == 2
