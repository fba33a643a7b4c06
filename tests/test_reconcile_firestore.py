"""Reconcile end to end on the Firestore emulator, and ``python -m servio_twilio reconcile``."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from servio_twilio.__main__ import main
from servio_twilio.domain.errors import SendOutcomeUnknown
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.reconcile_command import parse_duration, run_reconcile
from servio_twilio.sending.async_client import AsyncCommunicationsClient
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.firestore_emulator import unique_collection
from support.sending import ACCOUNT, PHONE, TO, make_settings
from support.sync_facade import LoopThread

pytestmark = pytest.mark.server

NOW = datetime.now(UTC).replace(microsecond=0)
ENVIRONMENT = {
    "TWILIO_ACCOUNT_SID": ACCOUNT,
    "TWILIO_AUTH_TOKEN": "auth-token-secret",
    "TWILIO_PHONE_NUMBER": PHONE,
    "BACKEND_URL": "https://api.servio.test",
}


def _open_record(repository: Any, **fields: Any) -> Communication:
    values: dict[str, Any] = {
        "prospect_id": "p1",
        "channel": Channel.SMS,
        "to": TO,
        "from_": PHONE,
        "body": "hello",
        "timestamp": NOW - timedelta(hours=3),
    }
    values.update(fields)
    added: Communication = repository.add(Communication(**values))
    return added


class TestOnTheEmulator:
    def test_reconcile_settles_lost_callbacks_and_unknowns(self, firestore_repository: Any) -> None:
        """The open-records query, fetch, lookup and merge, all on Firestore."""
        clock = [NOW - timedelta(hours=3)]
        fake = FakeTwilio(clock=lambda: clock[0])
        client = CommunicationsClient(
            make_settings(),
            repository=firestore_repository,
            http_client=fake,
            clock=lambda: clock[0],
            sleep=lambda _: None,
        )
        delivered = client.send_sms(TO, "one", prospect_id="p1")
        fake.set_status(delivered.sid, "delivered", price="-0.0075", price_unit="USD")
        still = client.send_sms(TO, "two", prospect_id="p1")
        fake.set_status(still.sid, "sent")
        fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown) as raised:
            client.send_sms(TO, "three", prospect_id="p1")
        [taken] = [r for r in fake.resources("message") if r["body"] == "three"]
        fake.set_status(taken["sid"], "undelivered", error_code=30005)
        never = _open_record(firestore_repository, status="pending", timestamp=clock[0])
        clock[0] = NOW

        report = client.reconcile()
        assert (report.examined, report.settled, report.still_open, report.not_sent) == (4, 2, 1, 1)
        assert report.ok
        get = firestore_repository.get
        assert get(delivered.communication_id).price == "-0.0075"
        assert get(raised.value.communication_id).twilio_sid is not None
        assert get(never.id).status == "failed"
        assert [r.id for r in firestore_repository.communications(open_only=True)] == [
            still.communication_id
        ]
        assert client.costs("p1") == {"USD": Decimal("0.0075")}


class TestOnTheEmulatorAsync:
    def test_the_async_client_over_the_async_repository(
        self, async_firestore_repository: Any
    ) -> None:
        """AsyncCommunicationsClient over AsyncFirestoreRepository: fetches as tasks, the
        query and the merges awaited on one loop; the records settle as on the sync side."""
        clock = [NOW - timedelta(hours=3)]
        fake = FakeTwilio(clock=lambda: clock[0])

        async def scenario() -> tuple[Any, ...]:
            client = AsyncCommunicationsClient(
                make_settings(),
                repository=async_firestore_repository,
                http_client=fake.aio,
                clock=lambda: clock[0],
            )
            async with client:
                sent = [await client.send_sms(TO, f"m{n}", prospect_id="p1") for n in range(12)]
                for result in sent:
                    fake.set_status(result.sid, "delivered", price="-0.0075", price_unit="USD")
                clock[0] = NOW
                report = await client.reconcile(max_concurrency=5)
                again = await client.reconcile()
                costs = await client.costs("p1")
            return report, again, costs

        loop = LoopThread()
        try:
            report, again, costs = loop.run(scenario())
        finally:
            loop.close()
        assert (report.examined, report.settled, report.ok) == (12, 12, True)
        assert again.examined == 0
        assert costs == {"USD": Decimal("0.0900")}


class TestCommand:
    def test_run_reconcile_prints_the_report_as_json(
        self, firestore_client: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The command's body: settings from the environment, JSON on stdout, exit 0."""
        collection = unique_collection()
        from servio_twilio.firestore import FirestoreRepository

        repository = FirestoreRepository(firestore_client, collection=collection)
        fake = FakeTwilio()
        client = CommunicationsClient(make_settings(), repository=repository, http_client=fake)
        sent = client.send_sms(TO, "hello", prospect_id="p1")
        fake.set_status(sent.sid, "delivered")
        stdout, stderr = io.StringIO(), io.StringIO()
        status = run_reconcile(
            older_than=timedelta(0),
            limit=10,
            not_sent_after=timedelta(hours=1),
            collection=collection,
            stdout=stdout,
            stderr=stderr,
            environ=ENVIRONMENT,
            http_client=fake,
            firestore_client=firestore_client,
        )
        assert status == 0, stderr.getvalue()
        assert json.loads(stdout.getvalue()) == {
            "examined": 1,
            "settled": 1,
            "still_open": 0,
            "not_sent": 0,
            "failed": [],
        }
        assert "1 of 1 checked" in stderr.getvalue()
        assert TO not in stderr.getvalue()

    def test_a_record_that_cannot_be_checked_exits_1(self, firestore_client: Any) -> None:
        """Twilio failing for a record: it is in ``failed`` and the exit status is 1."""
        collection = unique_collection()
        from servio_twilio.firestore import FirestoreRepository

        repository = FirestoreRepository(firestore_client, collection=collection)
        _open_record(repository, twilio_sid="SM" + "7" * 32, status="sent")
        stdout, stderr = io.StringIO(), io.StringIO()
        status = run_reconcile(
            older_than=timedelta(minutes=10),
            limit=10,
            not_sent_after=timedelta(hours=1),
            collection=collection,
            stdout=stdout,
            stderr=stderr,
            environ=ENVIRONMENT,
            http_client=FakeTwilio(),
            firestore_client=firestore_client,
        )
        assert status == 1
        [failure] = json.loads(stdout.getvalue())["failed"]
        assert "no such resource" in failure["reason"]

    def test_bad_environment_exits_2(self) -> None:
        """Missing Twilio settings or Firestore project: exit 2 naming what is missing."""
        stderr = io.StringIO()
        status = run_reconcile(
            older_than=timedelta(minutes=10),
            limit=10,
            not_sent_after=timedelta(hours=1),
            collection="communications",
            stdout=io.StringIO(),
            stderr=stderr,
            environ={},
        )
        assert status == 2
        assert "TWILIO_ACCOUNT_SID" in stderr.getvalue()
        stderr = io.StringIO()
        status = run_reconcile(
            older_than=timedelta(minutes=10),
            limit=10,
            not_sent_after=timedelta(hours=1),
            collection="communications",
            stdout=io.StringIO(),
            stderr=stderr,
            environ=ENVIRONMENT,
        )
        assert status == 2
        assert "GOOGLE_CLOUD_PROJECT" in stderr.getvalue()

    def test_the_module_command_runs_against_the_emulator(
        self, firestore_emulator: str, firestore_client: Any
    ) -> None:
        """``python -m servio_twilio reconcile`` in a process of its own, Twilio unreachable.

        Twilio's host is reached through a proxy that refuses connections (no
        traffic leaves 127.0.0.1): the open record cannot be checked, exit 1,
        the JSON report names it; an empty collection exits 0.
        """
        collection = unique_collection()
        from servio_twilio.firestore import FirestoreRepository

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        env = {
            **os.environ,
            **ENVIRONMENT,
            "FIRESTORE_EMULATOR_HOST": firestore_emulator,
            "GOOGLE_CLOUD_PROJECT": firestore_client.project,
            "HTTPS_PROXY": f"http://127.0.0.1:{closed_port}",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        command = [sys.executable, "-m", "servio_twilio", "reconcile", "--collection", collection]
        empty = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert empty.returncode == 0, empty.stderr
        assert json.loads(empty.stdout)["examined"] == 0

        repository = FirestoreRepository(firestore_client, collection=collection)
        record = _open_record(repository, twilio_sid="SM" + "8" * 32, status="queued")
        done = subprocess.run(
            [*command, "--older-than", "1h", "--limit", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        report = json.loads(done.stdout)
        assert report["examined"] == 1
        assert report["failed"][0]["communication_id"] == record.id
        assert "reconcile: 1 open records" in done.stderr


class TestArguments:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("90s", timedelta(seconds=90)),
            ("10m", timedelta(minutes=10)),
            ("2h", timedelta(hours=2)),
            ("7d", timedelta(days=7)),
            ("15", timedelta(minutes=15)),
        ],
    )
    def test_durations(self, text: str, expected: timedelta) -> None:
        """Durations read as seconds, minutes, hours, days; a bare number is minutes."""
        assert parse_duration(text) == expected

    @pytest.mark.parametrize("text", ["", "10x", "-5m", "1.5h", "ten"])
    def test_bad_duration_is_a_usage_error(
        self, text: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad ``--older-than`` exits 2 with argparse's usage message."""
        with pytest.raises(SystemExit) as exited:
            main(["reconcile", f"--older-than={text}"])
        assert exited.value.code == 2
        assert "not a duration" in capsys.readouterr().err
