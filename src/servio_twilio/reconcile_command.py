"""``python -m servio_twilio reconcile``: one reconcile run, for a Cloud Run job or cron.

Reads the Twilio settings from the environment (`TwilioSettings.from_env`)
and the records from Firestore: ``GOOGLE_CLOUD_PROJECT`` names the project,
or ``FIRESTORE_EMULATOR_HOST`` points at an emulator. Progress goes to
stderr, the `ReconcileReport` to stdout as JSON. Exit status: 0 when every
record could be checked, 1 when some could not (or the records could not be
read), 2 for a configuration error.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import IO, Any

from servio_twilio.domain.errors import ConfigurationError, ServioTwilioError
from servio_twilio.domain.phone_text import mask_phone_numbers
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.client import CommunicationsClient

__all__ = ["parse_duration", "run_reconcile"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "": "minutes"}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"7d"`` (a bare number is minutes) as a timedelta.

    Raises:
        ValueError: any other text.
    """
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"not a duration: {text!r} (use 90s, 10m, 2h or 7d)")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def run_reconcile(
    *,
    older_than: timedelta,
    limit: int,
    not_sent_after: timedelta,
    collection: str,
    stdout: IO[str],
    stderr: IO[str],
    environ: Mapping[str, str] | None = None,
    http_client: Any = None,
    firestore_client: Any = None,
) -> int:
    """Run `CommunicationsClient.reconcile` on the environment's settings and Firestore.

    ``http_client`` and ``firestore_client`` replace twilio's HTTP client and
    the Firestore client built from the environment (tests pass FakeTwilio
    and an emulator client). Returns the exit status.
    """
    env = os.environ if environ is None else environ
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    log = logging.getLogger("servio_twilio")
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        try:
            settings = TwilioSettings.from_env(env)
            repository = _repository(env, collection, firestore_client)
        except ServioTwilioError as exc:
            print(f"reconcile: {exc}", file=stderr)
            return 2
        client = CommunicationsClient(settings, repository=repository, http_client=http_client)
        try:
            report = client.reconcile(
                older_than=older_than, limit=limit, not_sent_after=not_sent_after
            )
        except ServioTwilioError as exc:
            print(f"reconcile: {mask_phone_numbers(str(exc))}", file=stderr)
            return 1
        json.dump(report.to_dict(), stdout, indent=2)
        stdout.write("\n")
        return 0 if report.ok else 1
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _repository(env: Mapping[str, str], collection: str, client: Any) -> Any:
    try:
        from servio_twilio.firestore import FirestoreRepository  # noqa: PLC0415 - the extra
    except ImportError as exc:
        raise ConfigurationError(
            f"reconcile reads Firestore: pip install 'servio-twilio[firestore]' ({exc})"
        ) from None
    if client is None:
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT")
        emulator = env.get("FIRESTORE_EMULATOR_HOST")
        if not project and not emulator:
            raise ConfigurationError(
                "set GOOGLE_CLOUD_PROJECT (or FIRESTORE_EMULATOR_HOST for an emulator)"
            )
        from google.cloud import firestore  # noqa: PLC0415 - the extra

        client = firestore.Client(project=project or "demo-servio-twilio")
    return FirestoreRepository(client, collection=collection)
