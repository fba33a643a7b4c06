"""The demo's output: tables for a person, or one JSON document, and the exit status."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, TextIO

from servio_twilio.demo import flow
from servio_twilio.domain.phone_text import mask_phone
from servio_twilio.storage.memory import InMemoryRepository

__all__ = ["render", "run_demo", "table"]

log = logging.getLogger("servio_twilio.demo")

_HISTORY_HEADERS = [
    "time (UTC)",
    "channel",
    "direction",
    "to",
    "status",
    "price",
    "events",
    "details",
]


def table(rows: list[list[str]], headers: list[str]) -> str:
    """``rows`` under ``headers``, in columns."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _details(c: dict[str, Any]) -> str:
    details = []
    if c["duration"] is not None:
        details.append(f"{c['duration']}s")
    if c["recording_duration"] is not None:
        details.append(f"recording {c['recording_duration']}s")
    if c["media_urls"]:
        details.append(f"{len(c['media_urls'])} media")
    if c["error"]:
        details.append(c["error"])
    if c["body"]:
        details.append(repr(c["body"]))
    return ", ".join(details)


def render(result: dict[str, Any], elapsed: float) -> str:
    """The demo's results as text tables (numbers masked)."""
    history_rows = [
        [
            c["timestamp"][11:23],
            c["channel"],
            c["direction"],
            mask_phone(c["to"]),
            c["status"],
            f"{c['price']} {c['price_unit']}" if c["price"] is not None else "",
            str(result["events_kept"].get(c["id"], 0)),
            _details(c),
        ]
        for c in result["history"]
    ]
    batch = result["batch"]
    batch_rows = [
        [
            str(item["index"]),
            mask_phone(item["to"]),
            "sent" if item["ok"] else "FAILED",
            item["result"]["sid"] if item["result"] else (item["error"] or ""),
        ]
        for item in batch["items"]
    ]
    reconcile_rows = [
        [
            when,
            str(r["examined"]),
            str(r["settled"]),
            str(r["still_open"]),
            str(r["not_sent"]),
            str(len(r["failed"])),
        ]
        for when, r in zip(("+15 min", "+75 min"), result["reconcile"], strict=True)
    ]
    costs = ", ".join(f"{amount} {currency}" for currency, amount in result["costs"].items())
    callbacks = result["callbacks"]
    refused = sum(1 for d in callbacks if d["status_code"] == 403)
    lost = ", ".join(f"#{i}" for i in flow.LOST_BATCH_ITEMS)
    return "\n".join(
        [
            f"servio-twilio demo: webhook app at {result['webhook_url']}",
            f"{len(callbacks)} signed callbacks delivered over HTTP "
            f"({refused} with a bad signature refused with 403); "
            f"the callbacks of batch items {lost} lost on purpose",
            "",
            f"History of {result['prospect_id']} (newest first)",
            table(history_rows, _HISTORY_HEADERS),
            f"Cost of {result['prospect_id']}: {costs or 'nothing yet'}",
            "",
            f"Batch report: {batch['succeeded']} of {batch['total']} sent, "
            f"{batch['failed']} failed",
            table(batch_rows, ["#", "to", "outcome", "sid / error"]),
            "",
            "Reconcile (lost callbacks, prices, two unknown outcomes: one Twilio took, "
            "one it never saw)",
            table(
                reconcile_rows, ["run", "examined", "settled", "still open", "not sent", "failed"]
            ),
            "",
            f"done in {elapsed:.2f}s",
        ]
    )


def run_demo(
    *,
    json_output: bool,
    stdout: TextIO,
    stderr: TextIO,
    serve: bool = False,
    port: int = 0,
    stop: threading.Event | None = None,
) -> int:
    """Run the demo; print a report (or one JSON document) and return the exit status.

    With ``serve``, the webhook app and a console stay up on ``port`` (a free
    one when 0) after the report, until Ctrl-C or ``stop`` is set.
    """
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("servio_twilio")
    package_log.addHandler(handler)
    previous_level = package_log.level
    package_log.setLevel(logging.INFO if not json_output else logging.WARNING)
    started = time.perf_counter()
    repository = InMemoryRepository()
    printed: list[float] = []

    def report_then_serve(base_url: str, mount: Any, result: dict[str, Any]) -> None:
        printed.append(time.perf_counter() - started)
        _print(result, printed[0], json_output, stdout)
        from servio_twilio.demo.serve import console_server  # noqa: PLC0415 - needs jinja2

        console_server(repository, stdout, stop or threading.Event())(base_url, mount, result)

    try:
        result = flow.run_flow(
            flow.DemoClock(),
            repository,
            serve_more=report_then_serve if serve else None,
            port=port,
        )
    except KeyboardInterrupt:
        stderr.write("stopped\n")
        return 0
    except Exception as exc:  # any failure is the demo's answer, with its reason
        log.error("demo failed: %s: %s", type(exc).__name__, exc)
        print(f"demo failed: {exc}", file=stderr)
        return 1
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(previous_level)
    if not printed:
        _print(result, time.perf_counter() - started, json_output, stdout)
    return 0


def _print(result: dict[str, Any], elapsed: float, json_output: bool, stdout: TextIO) -> None:
    if json_output:
        result["elapsed_seconds"] = round(elapsed, 3)
        json.dump(result, stdout, ensure_ascii=False, indent=2)
        stdout.write("\n")
    else:
        stdout.write(render(result, elapsed) + "\n")
    stdout.flush()
