"""Command line: ``python -m servio_twilio demo [--json]`` and ``reconcile``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m servio_twilio",
        description="servio-twilio: SMS, WhatsApp and calls through Twilio, logged in Firestore.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the whole flow offline: sends, signed callbacks over HTTP, history",
        description=(
            "Send an SMS, a WhatsApp message with media, a recorded call and a batch through "
            "FakeTwilio, deliver Twilio-style signed callbacks to a real webhook server on "
            "127.0.0.1, and print the prospect's history and the batch report. No credentials, "
            "no network."
        ),
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="write the results as one JSON document on stdout (logs go to stderr)",
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep the webhook app and an operator console (at /console, with a "
        "one-time password) running until Ctrl-C; needs servio-twilio[console]",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=0,
        help="the port to serve on with --serve (default: a free one)",
    )
    reconcile = commands.add_parser(
        "reconcile",
        help="settle records whose callbacks never came, from Twilio's API (a job or cron)",
        description=(
            "Check the open records in Firestore (GOOGLE_CLOUD_PROJECT, or the emulator at "
            "FIRESTORE_EMULATOR_HOST) against Twilio (TWILIO_* settings) and settle them. "
            "Progress on stderr, the report as JSON on stdout; exit 0 when every record "
            "could be checked, 1 otherwise, 2 for a configuration error."
        ),
    )
    reconcile.add_argument(
        "--older-than",
        default="10m",
        metavar="AGE",
        help="only records older than this (90s, 10m, 2h, 7d; default 10m)",
    )
    reconcile.add_argument(
        "--not-sent-after",
        default="1h",
        metavar="AGE",
        help="fail a record Twilio never saw once it is this old (default 1h)",
    )
    reconcile.add_argument(
        "--limit", type=int, default=500, help="at most this many records (default 500)"
    )
    reconcile.add_argument(
        "--collection", default="communications", help="the Firestore collection"
    )
    args = parser.parse_args(argv)

    if args.command == "reconcile":
        from servio_twilio.reconcile_command import (  # noqa: PLC0415 - keeps --help instant
            parse_duration,
            run_reconcile,
        )

        try:
            older_than = parse_duration(args.older_than)
            not_sent_after = parse_duration(args.not_sent_after)
        except ValueError as exc:
            parser.error(str(exc))
        return run_reconcile(
            older_than=older_than,
            limit=args.limit,
            not_sent_after=not_sent_after,
            collection=args.collection,
            stdout=sys.stdout,
            stderr=sys.stderr,
        )

    from servio_twilio.demo import run_demo  # noqa: PLC0415 - keeps --help instant

    return run_demo(
        json_output=args.json,
        stdout=sys.stdout,
        stderr=sys.stderr,
        serve=args.serve,
        port=args.port,
    )


if __name__ == "__main__":
    sys.exit(main())
