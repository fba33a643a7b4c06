"""The offline demo: ``python -m servio_twilio demo``."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys

import httpx
import pytest

from servio_twilio import demo
from servio_twilio.__main__ import main
from servio_twilio.demo import flow
from servio_twilio.testing import FakeTwilio

pytestmark = pytest.mark.server


class TestDemoCommand:
    def test_json_is_one_document_and_the_flow_settles(self) -> None:
        """``demo --json`` exits 0 with exactly one JSON document on stdout, logs on stderr,
        and the document shows every record settled and the batch report."""
        completed = subprocess.run(
            [sys.executable, "-m", "servio_twilio", "demo", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        result = json.loads(completed.stdout)  # one document, nothing else on stdout
        statuses = sorted(
            (c["channel"], c["direction"], c["status"], c["price"]) for c in result["history"]
        )
        assert statuses == [
            ("call", "outbound", "completed", "-0.01300"),
            ("sms", "inbound", "received", None),
            ("sms", "outbound", "delivered", "-0.00790"),  # its callbacks, then reconcile's price
            ("sms", "outbound", "delivered", "-0.00790"),  # answer lost; reconcile found it
            ("sms", "outbound", "failed", None),  # answer lost; Twilio never saw it
            ("whatsapp", "outbound", "read", "-0.00500"),
        ]
        [never] = [c for c in result["history"] if c["status"] == "failed"]
        assert never["error"] == "not sent: Twilio has no such message"
        assert never["twilio_sid"] is None
        counts = [
            (r["examined"], r["settled"], r["still_open"], r["not_sent"], r["failed"])
            for r in result["reconcile"]
        ]
        assert counts == [(14, 13, 1, 0, []), (1, 0, 0, 1, [])]
        assert result["costs"] == {"USD": "0.03380"}
        codes = [d["status_code"] for d in result["callbacks"]]
        assert codes.count(403) == 1
        assert all(d["status_code"] == d["expected"] for d in result["callbacks"])
        batch = result["batch"]
        assert (batch["total"], batch["succeeded"], batch["failed"]) == (10, 9, 1)
        assert [item["index"] for item in batch["items"]] == list(range(10))
        assert not batch["items"][4]["ok"]
        assert "refused a webhook request" in completed.stderr

    def test_table_output(self) -> None:
        """Without ``--json`` the demo prints the history and the batch report as tables."""
        stdout, stderr = io.StringIO(), io.StringIO()
        assert demo.run_demo(json_output=False, stdout=stdout, stderr=stderr) == 0
        text = stdout.getvalue()
        assert "History of prospect_123 (newest first)" in text
        assert "Batch report: 9 of 10 sent, 1 failed" in text
        assert "Cost of prospect_123: 0.03380 USD" in text
        assert "+15 min  14        13       1           0         0" in text
        assert "+5511999999999" not in text  # numbers are masked
        assert "+55119*****999" in text

    def test_a_failing_step_exits_non_zero_with_the_reason(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When Twilio refuses the first send, the demo exits 1 and says why."""

        def refusing(**kwargs: object) -> FakeTwilio:
            fake = FakeTwilio(**kwargs)  # type: ignore[arg-type]
            fake.fail_number(demo.PROSPECT_NUMBER, FakeTwilio.Fault.error(21610, status=400))
            return fake

        monkeypatch.setattr(flow, "FakeTwilio", refusing)
        stdout, stderr = io.StringIO(), io.StringIO()
        assert demo.run_demo(json_output=True, stdout=stdout, stderr=stderr) == 1
        assert stdout.getvalue() == ""
        assert "demo failed" in stderr.getvalue()
        assert "21610" in stderr.getvalue()

    def test_a_wrong_settlement_is_a_failure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The demo checks its own outcome: a record that did not settle fails it."""
        checked = flow.check

        def stricter(history, report, replies):  # type: ignore[no-untyped-def]
            checked(history, report, replies)
            raise demo.DemoFailed("outbound sms settled as 'sent', not 'delivered'")

        monkeypatch.setattr(flow, "check", stricter)
        stderr = io.StringIO()
        assert demo.run_demo(json_output=False, stdout=io.StringIO(), stderr=stderr) == 1
        assert "settled as 'sent'" in stderr.getvalue()

    def test_usage(self, capsys: pytest.CaptureFixture[str]) -> None:
        """No command is a usage error (exit 2), and ``--help`` names the demo."""
        with pytest.raises(SystemExit) as exited:
            main([])
        assert exited.value.code == 2
        with pytest.raises(SystemExit):
            main(["--help"])
        assert "demo" in capsys.readouterr().out


class TestServe:
    def test_serve_keeps_the_webhook_app_and_a_console_until_ctrl_c(self) -> None:
        """``demo --serve`` prints the report, then a console URL and a one-time password;
        the console answers with them (and 401 without), shows the demo's records, and
        Ctrl-C ends the process with exit 0."""
        process = subprocess.Popen(
            [sys.executable, "-m", "servio_twilio", "demo", "--serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                if line.startswith("Serving until Ctrl-C"):
                    break
            text = "".join(lines)
            assert "History of prospect_123 (newest first)" in text
            [console_line] = [line for line in lines if line.startswith("Console:")]
            url = console_line.split()[1]
            password = console_line.rsplit("password ", 1)[1].rstrip(")\n")
            assert url.startswith("http://127.0.0.1:")
            assert url.endswith("/console/")
            assert httpx.get(url, timeout=10).status_code == 401
            overview = httpx.get(url, auth=("demo", password), timeout=10)
            assert overview.status_code == 200
            assert 'id="chart"' in overview.text
            prospect = httpx.get(
                url + "prospects/prospect_123", auth=("demo", password), timeout=10
            )
            assert prospect.status_code == 200
            assert "not sent: Twilio has no such message" in prospect.text
            assert "+5511999999999" not in prospect.text  # masked
            assert "0.03380 USD" in prospect.text
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
