"""What a run record says about where it ran: versions, platform, backends."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("portamlp", "numpy", "array-api-compat", "tqdm", "cupy-cuda12x", "cupy-cuda13x",
            "torch", "array-api-strict", "matplotlib", "pillow")


def package_versions() -> dict[str, str | None]:
    """Installed versions of portamlp and the packages it can use (None: not installed)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict:
    """Python, platform and package versions (for run records and ``portamlp info``)."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {k: v for k, v in package_versions().items() if v is not None},
    }
