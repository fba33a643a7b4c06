"""The installed distribution's metadata: what PyPI and pip show users.

Read from the installed ``servio-twilio`` (``importlib.metadata``), so it
is what pyproject.toml built; after editing pyproject.toml, reinstall
(``bash scripts/check.sh`` does).
"""

from __future__ import annotations

import sys
from importlib import metadata, resources
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPOSITORY = "https://github.com/servio/servio-twilio"
PYTHON_CLASSIFIER = "Programming Language :: Python :: "


@pytest.fixture(scope="module")
def distribution_metadata() -> Any:
    return metadata.metadata("servio-twilio")


def python_versions(classifiers: list[str]) -> list[Version]:
    """The ``3.X`` versions of the "Programming Language :: Python :: 3.X" classifiers."""
    versions = []
    for classifier in classifiers:
        if classifier.startswith(PYTHON_CLASSIFIER):
            version = classifier.removeprefix(PYTHON_CLASSIFIER)
            if version.count(".") == 1 and version.replace(".", "").isdigit():
                versions.append(Version(version))
    return sorted(versions)


class TestProjectUrls:
    def test_source_issues_documentation_changelog(self, distribution_metadata: Any) -> None:
        """The project links point at the repository, its issues, docs and changelog."""
        urls = dict(entry.split(", ", 1) for entry in distribution_metadata.get_all("Project-URL"))
        assert urls == {
            "Source": REPOSITORY,
            "Issues": f"{REPOSITORY}/issues",
            "Documentation": f"{REPOSITORY}/tree/main/docs",
            "Changelog": f"{REPOSITORY}/blob/main/CHANGELOG.md",
        }


class TestClassifiers:
    def test_typed(self, distribution_metadata: Any) -> None:
        """The package says it is typed, and ships the py.typed marker that makes it so."""
        assert "Typing :: Typed" in distribution_metadata.get_all("Classifier")
        assert resources.files("servio_twilio").joinpath("py.typed").is_file()

    def test_python_versions_match_requires_python(self, distribution_metadata: Any) -> None:
        """Every Python version classified is allowed, the oldest allowed is classified, and
        this suite runs on one of them."""
        versions = python_versions(distribution_metadata.get_all("Classifier"))
        requires = SpecifierSet(distribution_metadata["Requires-Python"])
        assert versions, "no 'Programming Language :: Python :: 3.X' classifier"
        assert all(version in requires for version in versions), (versions, str(requires))
        lower = [Version(spec.version) for spec in requires if spec.operator == ">="]
        assert lower == [versions[0]], (versions, str(requires))
        running = Version(f"{sys.version_info.major}.{sys.version_info.minor}")
        assert running in versions, f"the suite runs on Python {running}, not classified"

    def test_no_license_classifier(self, distribution_metadata: Any) -> None:
        """The license is the SPDX expression alone: PEP 639 deprecates License classifiers."""
        classifiers = distribution_metadata.get_all("Classifier")
        assert not [c for c in classifiers if c.startswith("License ::")]


class TestLicense:
    def test_license_field_for_every_pip(self, distribution_metadata: Any) -> None:
        """``License: MIT`` is written (core metadata 2.3): pip 23.2's ``pip show`` reads only
        that field, not 2.4's ``License-Expression``, and showed an empty license."""
        assert distribution_metadata["License"] == "MIT"


class TestExtras:
    def test_only_the_user_facing_extras(self, distribution_metadata: Any) -> None:
        """Users are offered ``console``, ``firestore``, ``otel`` and ``redis`` only: tests,
        linters and docs are dependency groups of pyproject.toml, not extras of the package."""
        assert distribution_metadata.get_all("Provides-Extra") == [
            "console",
            "firestore",
            "otel",
            "redis",
        ]

    def test_console_extra_needs_jinja2(self, distribution_metadata: Any) -> None:
        """``servio-twilio[console]`` installs Jinja2, which the console's pages need."""
        extra = [
            requirement
            for requirement in distribution_metadata.get_all("Requires-Dist")
            if "extra == 'console'" in requirement.replace('"', "'")
        ]
        assert len(extra) == 1
        assert extra[0].startswith("jinja2")

    def test_otel_extra_needs_the_opentelemetry_api_only(self, distribution_metadata: Any) -> None:
        """``servio-twilio[otel]`` installs opentelemetry-api, no SDK: the host picks its own."""
        extra = [
            requirement.split(";")[0].replace(" ", "")
            for requirement in distribution_metadata.get_all("Requires-Dist")
            if "extra == 'otel'" in requirement.replace('"', "'")
        ]
        assert extra == ["opentelemetry-api>=1.20"]

    def test_firestore_extra_needs_google_cloud_firestore(self, distribution_metadata: Any) -> None:
        """``servio-twilio[firestore]`` installs google-cloud-firestore."""
        extra = [
            requirement
            for requirement in distribution_metadata.get_all("Requires-Dist")
            if "extra == 'firestore'" in requirement.replace('"', "'")
        ]
        assert len(extra) == 1
        assert extra[0].startswith("google-cloud-firestore")

    def test_redis_extra_needs_limits_with_redis(self, distribution_metadata: Any) -> None:
        """``servio-twilio[redis]`` installs limits with its redis storage, and redis."""
        extra = sorted(
            requirement.split(";")[0].replace(" ", "")
            for requirement in distribution_metadata.get_all("Requires-Dist")
            if "extra == 'redis'" in requirement.replace('"', "'")
        )
        assert [name.split(">")[0] for name in extra] == ["limits[redis]", "redis"]


class TestKeywords:
    def test_keywords(self, distribution_metadata: Any) -> None:
        """PyPI search finds the package by what it does."""
        keywords = set(distribution_metadata["Keywords"].split(","))
        assert {"twilio", "sms", "whatsapp", "voice", "firestore", "webhooks"} <= keywords
        assert {"asgi", "wsgi", "fastapi", "flask", "django"} <= keywords
