"""What the benchmarks share: the machine they ran on, and writing their JSON report."""

import json
import os
import platform
from pathlib import Path

import numpy as np


def machine() -> str:
    """CPU model, cores, Python and NumPy versions, on one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"NumPy {np.__version__}")


def write_report(path, report: dict) -> None:
    """Write a benchmark's report as JSON (creating the folder) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
