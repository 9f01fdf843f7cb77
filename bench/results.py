"""What every benchmark script shares: the machine it ran on, and its own section of RESULTS.md.

Each script owns one ``## ...`` section of ``bench/RESULTS.md`` and rewrites only that one
(under an exclusive lock, so two scripts finishing together do not lose each other's text).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RESULTS", "ROOT", "machine", "machine_line", "median", "write_section"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"


def machine() -> dict[str, str]:
    """CPU model and count, kernel, Python, the commit measured, and the load average now."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
            or "?"
        )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "takedown": commit,
        "load": f"{os.getloadavg()[0]:.1f}",
    }


def machine_line() -> str:
    m = machine()
    return (
        f"{m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"takedown {m['takedown']}, load average {m['load']} at the start"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write_section(title: str, text: str, path: Path = RESULTS) -> None:
    """Replace the section headed ``title`` (a ``## ...`` line) with ``text``, or append it."""
    if not text.startswith(title):
        raise ValueError(f"section text must start with its heading {title!r}")
    path.touch(exist_ok=True)
    with open(path, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        old = fh.read() or "# Benchmark results\n"
        lines = old.splitlines(keepends=True)
        start = next((i for i, ln in enumerate(lines) if ln.rstrip() == title), None)
        if start is None:
            new = old.rstrip("\n") + "\n\n" + text
        else:
            end = next(
                (j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")),
                len(lines),
            )
            rest = "".join(lines[end:])
            new = "".join(lines[:start]) + text.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
        fh.seek(0)
        fh.write(new.rstrip("\n") + "\n")
        fh.truncate()
