"""What the benchmarks print about the machine they ran on."""

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
