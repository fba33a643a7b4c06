"""The console's pages from their Jinja2 templates, and its stylesheet.

`Renderer` loads the templates shipped in the package (``templates/``) once,
with autoescaping on for every template and `jinja2.StrictUndefined`, so a
value reaches a page only as escaped text and a missing one is an error,
not an empty string. Jinja2 is imported here, when a console is built:
without it, building raises `ConfigurationError` naming the extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

from servio_twilio.console.chart import status_group
from servio_twilio.console.params import valid_id
from servio_twilio.console.views import Masking, format_time
from servio_twilio.domain.errors import ConfigurationError

__all__ = ["TEMPLATES", "Renderer"]

TEMPLATES: Final = (
    "base.html",
    "_macros.html",
    "overview.html",
    "communications.html",
    "record.html",
    "prospect.html",
    "consents.html",
    "error.html",
)
"""Every template the console renders (loaded when it is built)."""
_PACKAGE: Final = "servio_twilio.console"


class Renderer:
    """The console's templates, loaded once; `page` renders one to UTF-8 bytes.

    Raises:
        ConfigurationError: Jinja2 is not installed, or the package's
            templates or stylesheet are missing (a broken install).
    """

    def __init__(self, masking: Masking) -> None:
        try:
            import jinja2  # noqa: PLC0415 - only a console needs it
        except ImportError:
            raise ConfigurationError(
                'the operator console needs Jinja2: pip install "servio-twilio[console]"'
            ) from None
        self.masking = masking
        """How the pages show numbers."""
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader(_PACKAGE, "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._env.globals.update(
            number=masking.number,
            masked_text=masking.text,
            when=format_time,
            valid_id=valid_id,
            group=status_group,
            masked=masking.enabled,
        )
        try:
            self._templates = {name: self._env.get_template(name) for name in TEMPLATES}
            self.stylesheet: bytes = (
                resources.files(_PACKAGE).joinpath("static", "console.css").read_bytes()
            )
            """The console's stylesheet, served at ``/static/console.css``."""
        except (OSError, jinja2.TemplateError) as exc:
            raise ConfigurationError(
                f"the console's templates or stylesheet are missing from the install: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"<Renderer templates={len(self._templates)}>"

    def page(self, template: str, context: Mapping[str, Any]) -> bytes:
        """``template`` rendered with ``context``, as UTF-8."""
        return self._templates[template].render(context).encode("utf-8")
