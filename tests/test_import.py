"""``import servio_twilio`` is cheap: heavy dependencies load only when a name needs them."""

from __future__ import annotations

import pytest

from support.processes import run_python

HEAVY = [
    "twilio",
    "twilio.rest",
    "google.cloud.firestore",
    "grpc",
    "phonenumbers",
    "asyncio",
    "pydantic",
    "pydantic_core",
    "fastapi",
    "opentelemetry",
]


def _loaded_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of HEAVY ended up in sys.modules."""
    script = (
        f"import json, sys\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    loaded: dict[str, bool] = run_python(script)
    return loaded


class TestImportCost:
    def test_the_probe_sees_imports(self) -> None:
        """The probe itself works: importing twilio.rest shows up as loaded."""
        loaded = _loaded_after("import twilio.rest")
        assert loaded["twilio"]
        assert loaded["twilio.rest"]

    def test_import_loads_no_heavy_dependency(self) -> None:
        """``import servio_twilio`` loads none of HEAVY (twilio, Firestore, grpc, pydantic,
        OpenTelemetry...)."""
        loaded = _loaded_after("import servio_twilio")
        assert [name for name, present in loaded.items() if present] == []

    def test_all_and_dir_stay_cheap(self) -> None:
        """Listing the public names imports nothing heavy."""
        loaded = _loaded_after("import servio_twilio\nservio_twilio.__all__\ndir(servio_twilio)")
        assert [name for name, present in loaded.items() if present] == []

    @pytest.mark.parametrize(
        "name", ["TwilioSettings", "ConfigurationError", "Communication", "InMemoryRepository"]
    )
    def test_domain_names_stay_light(self, name: str) -> None:
        """Domain and storage names load no Twilio REST client, Firestore, grpc or asyncio."""
        loaded = _loaded_after(f"import servio_twilio\nservio_twilio.{name}")
        for heavy in ("twilio.rest", "google.cloud.firestore", "grpc", "asyncio"):
            assert not loaded[heavy], heavy

    def test_result_types_load_no_pydantic(self) -> None:
        """The result types' pydantic schema hook imports pydantic only when a schema is built."""
        names = ["SendResult", "BatchReport", "BatchItemResult", "HealthReport", "HealthCheck"]
        code = "import servio_twilio\n" + "\n".join(
            f"servio_twilio.{name}" for name in [*names, "Communication"]
        )
        loaded = _loaded_after(code)
        for heavy in ("pydantic", "pydantic_core", "fastapi"):
            assert not loaded[heavy], heavy

    def test_settings_from_env_stays_light(self) -> None:
        """Reading settings (which normalizes numbers) still loads no twilio or asyncio."""
        code = (
            "import servio_twilio\n"
            "servio_twilio.TwilioSettings.from_env({'TWILIO_ACCOUNT_SID': 'AC' + '0' * 32,"
            " 'TWILIO_AUTH_TOKEN': 't', 'TWILIO_PHONE_NUMBER': '+12025550100'})"
        )
        loaded = _loaded_after(code)
        for heavy in ("twilio", "twilio.rest", "google.cloud.firestore", "grpc", "asyncio"):
            assert not loaded[heavy], heavy
        assert loaded["phonenumbers"]

    def test_version_stays_light(self) -> None:
        """``__version__`` comes from package metadata, importing nothing heavy."""
        loaded = _loaded_after("import servio_twilio\nservio_twilio.__version__")
        assert [name for name, present in loaded.items() if present] == []
