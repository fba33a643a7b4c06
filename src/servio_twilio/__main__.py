"""Command line: ``python -m servio_twilio demo [--json]``."""

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
    args = parser.parse_args(argv)

    from servio_twilio.demo import run_demo  # noqa: PLC0415 - keeps --help instant

    return run_demo(json_output=args.json, stdout=sys.stdout, stderr=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
