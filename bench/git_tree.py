"""An earlier version of the package, for benchmarks that measure it beside today's.

`extract_src(commit, into)` writes ``src/`` as it was at ``commit`` (``git
archive``) under ``into`` and returns the path to put on ``PYTHONPATH``.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

__all__ = ["ROOT", "extract_src"]

ROOT = Path(__file__).resolve().parent.parent


def extract_src(commit: str, into: Path) -> Path:
    """``src`` at ``commit``, from git, under ``into``; the path to put on PYTHONPATH."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"
