"""Run records: what ``portamlp train`` writes beside a model, and where it ran."""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "package_versions", "environment", "run_record_path", "read_run_record",
           "write_run_record"]

PACKAGES = ("portamlp", "numpy", "array-api-compat", "safetensors", "tqdm", "cupy-cuda12x",
            "cupy-cuda13x", "torch", "array-api-strict", "matplotlib", "pillow")


def package_versions() -> dict[str, str | None]:
    """Installed versions of portamlp and the packages it can use (None: not installed)."""
    out: dict[str, str | None] = {}
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


def run_record_path(model_path: Path) -> Path:
    """Where the run record of a saved model goes: ``net.json`` → ``net.run.json``."""
    return model_path.with_suffix(".run.json")


def read_run_record(model: Path) -> dict[str, Any]:
    """The run record beside a model, or ``{}`` when there is none (or it is unreadable)."""
    path = run_record_path(model)
    try:
        record = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_run_record(path: Path, *, model: Path, config: dict, network, history: list,
                     test_accuracy: float | None, stopped_early: bool, overwrite: bool,
                     interrupted: bool = False, fast_step: bool | None = None) -> dict[str, Any]:
    """Write the run record of a trained (or interrupted) run atomically; return it."""
    from .models import atomic_write_bytes

    record = {
        "model": str(model.name),
        "options": config,
        "backend": network.backend.name,
        "device": str(network.backend.device),
        "environment": environment(),
        "history": [dataclasses.asdict(r) for r in history],
        "test_accuracy": test_accuracy,
        "stopped_early": stopped_early,
        "interrupted": interrupted,
        "fast_step": fast_step,  # the fast CuPy step trained (None: not known)
    }
    atomic_write_bytes(path, json.dumps(record, indent=1).encode(), overwrite=overwrite)
    return record
