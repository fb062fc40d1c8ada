"""Run records: what each epoch measured, and what ``portamlp train`` writes beside a model.

:class:`EpochRecord` is one entry of a run's history (``TrainResult.history``, checkpoints and
run records hold lists of them); a run record (``net.run.json`` beside ``net.json``) holds the
options, where the run trained, the versions of what it used, its history and its test
accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

from ..backends import LIBRARIES
from .writing import atomic_write_bytes

__all__ = ["EpochRecord", "packages", "package_versions", "environment", "run_record_path",
           "read_run_record", "write_run_record"]


@dataclass
class EpochRecord:
    """What one epoch measured.

    ``train_loss`` and ``validation_loss`` are aliases of ``train_cost`` and
    ``validation_cost`` (portamlp's word is "cost"; records written before it read the same).
    """

    epoch: int
    seconds: float
    #: Mean cost over the epoch's training mini-batches.
    train_cost: float
    validation_accuracy: float | None = None
    #: Mean cost on the validation set.
    validation_cost: float | None = None
    #: Classes the network never predicted on the validation set.
    never_predicted: list[int] = field(default_factory=list)
    #: The learning rate used in this epoch.
    learning_rate: float | None = None

    #: Earlier names of fields, still read.
    ALIASES: ClassVar[dict[str, str]] = {"train_loss": "train_cost",
                                         "validation_loss": "validation_cost"}

    @property
    def train_loss(self) -> float:
        """Alias of :attr:`train_cost`."""
        return self.train_cost

    @property
    def validation_loss(self) -> float | None:
        """Alias of :attr:`validation_cost`."""
        return self.validation_cost

    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON-ready) data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        """The inverse of :meth:`to_dict` (earlier field names accepted); TypeError for an
        unknown field."""
        return cls(**{cls.ALIASES.get(k, k): v for k, v in data.items()})


def packages() -> tuple[str, ...]:
    """The distributions whose versions run records and ``portamlp info`` list: portamlp,
    what it always uses, the array libraries of the backend entries, the extras."""
    backends = [d for entry in LIBRARIES.values() for d in entry.distributions
                if d != "numpy"]
    return ("portamlp", "numpy", "array-api-compat", "safetensors", "tqdm", *backends,
            "matplotlib", "pillow")


def package_versions() -> dict[str, str | None]:
    """Installed versions of portamlp and the packages it can use (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in packages():
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
    record = {
        "model": str(model.name),
        "options": config,
        "backend": network.backend.name,
        "device": str(network.backend.device),
        "environment": environment(),
        "history": [r.to_dict() for r in history],
        "test_accuracy": test_accuracy,
        "stopped_early": stopped_early,
        "interrupted": interrupted,
        "fast_step": fast_step,  # the fast CuPy step trained (None: not known)
    }
    atomic_write_bytes(path, json.dumps(record, indent=1).encode(), overwrite=overwrite)
    return record
