"""How long ``import servio_twilio`` takes, beside importing what it wraps.

Runs each snippet in N fresh interpreters (``sys.executable -c ...``) and
reports the median and minimum wall time:

- ``pass``: interpreter start alone;
- ``import servio_twilio``: ours;
- ``import twilio.rest, google.cloud.firestore``: the baseline, what a host
  pays when it imports the dependencies directly.

The ratio ours / baseline is printed raw and with interpreter start
subtracted from both; the target is <= 0.2. Stdlib only.

    python bench/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

SNIPPETS = {
    "interpreter start": "pass",
    "servio_twilio": "import servio_twilio",
    "twilio.rest + firestore": "import twilio.rest, google.cloud.firestore",
}
TARGET_RATIO = 0.2


def time_snippet(code: str, runs: int) -> list[float]:
    """Wall times in milliseconds of ``runs`` fresh interpreters running ``code``."""
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table, and exit 1 when the ratio misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per snippet")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    for code in SNIPPETS.values():  # warm the OS file cache and .pyc files
        subprocess.run([sys.executable, "-c", code], check=True)
    # Interleave the snippets so drift on a shared machine hits them alike.
    samples: dict[str, list[float]] = {name: [] for name in SNIPPETS}
    for _ in range(args.runs):
        for name, code in SNIPPETS.items():
            samples[name].extend(time_snippet(code, 1))

    median = {name: statistics.median(times) for name, times in samples.items()}
    minimum = {name: min(times) for name, times in samples.items()}
    start_med, start_min = median["interpreter start"], minimum["interpreter start"]

    print(f"python {sys.version.split()[0]}, {args.runs} runs each (fresh process per run)")
    print(f"{'snippet':<26}{'median ms':>11}{'min ms':>9}{'- start (median)':>18}")
    for name in SNIPPETS:
        net = median[name] - start_med
        print(f"{name:<26}{median[name]:>11.1f}{minimum[name]:>9.1f}{net:>18.1f}")

    ours, base = "servio_twilio", "twilio.rest + firestore"
    raw_ratio = median[ours] / median[base]
    net_ours = max(median[ours] - start_med, 0.0)
    net_base = max(median[base] - start_med, 1e-9)
    net_ratio = net_ours / net_base
    net_min_ratio = max(minimum[ours] - start_min, 0.0) / max(minimum[base] - start_min, 1e-9)
    print()
    print(f"ratio ours/baseline, raw (median):             {raw_ratio:.3f}")
    print(f"ratio ours/baseline, start subtracted (median): {net_ratio:.3f}")
    print(f"ratio ours/baseline, start subtracted (min):    {net_min_ratio:.3f}")
    verdict = "meets" if net_ratio <= TARGET_RATIO else "MISSES"
    print(f"target <= {TARGET_RATIO} (start subtracted, median): {verdict}")
    return 0 if net_ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
