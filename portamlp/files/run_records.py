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
from ..errors import warn
from .writing import atomic_write_bytes

__all__ = ["EpochRecord", "packages", "package_versions", "environment", "run_record_path",
           "read_run_record", "load_run_record", "write_run_record"]


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
    #: How many validation rows the network assigned to each class (empty without validation).
    predicted_counts: list[int] = field(default_factory=list)
    #: How many validation rows hold each label.
    label_counts: list[int] = field(default_factory=list)
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


#: Run records larger than this (bytes) are not read: a long run's record takes a few MB.
MAX_RUN_RECORD_BYTES = 16 << 20


def read_run_record(model: Path) -> dict[str, Any]:
    """The run record beside a model, or ``{}`` when there is none.

    A record that cannot be used — unreadable, too large, not JSON, nested too deeply, not an
    object, or with ``options`` that are not an object — is ignored with a warning naming it:
    the model itself is all that ``evaluate``, ``predict`` and ``serve`` need.
    """
    path = run_record_path(model)
    if not path.is_file():
        return {}
    record, problem = _read_record(path)
    if problem is None and not isinstance(record, dict):
        problem = f"it holds a JSON {type(record).__name__}, not an object"
    elif problem is None and not isinstance(record.get("options", {}), dict):
        problem = "its 'options' are not an object"
    if problem is not None:
        warn(f"{path}: ignoring this run record: {problem}")
        return {}
    return record


def load_run_record(path: Path) -> dict[str, Any]:
    """A run record read for its history (``portamlp plot``): FileNotFoundError when there is
    none, ValueError naming what is wrong with one that cannot be used."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such run record")
    record, problem = _read_record(path)
    if problem is None and not (isinstance(record, dict)
                                and isinstance(record.get("history"), list)
                                and all(isinstance(h, dict) for h in record["history"])):
        problem = "it has no 'history' list of epochs"
    if problem is not None:
        raise ValueError(f"{path}: not a usable portamlp run record: {problem}")
    return record


def _read_record(path: Path) -> tuple[Any, str | None]:
    """A run record's JSON, or what is wrong with it."""
    try:
        size = path.stat().st_size
        if size > MAX_RUN_RECORD_BYTES:
            return None, f"it is {size:,} bytes, over the {MAX_RUN_RECORD_BYTES:,}-byte limit"
        return json.loads(path.read_bytes()), None
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror or exc})"
    except RecursionError:
        return None, "its JSON is nested too deeply"
    except ValueError as exc:  # not JSON, not UTF-8, an integer of over 4,300 digits
        text = " ".join(str(exc).split())
        return None, f"it is not valid JSON ({text[:100]})"


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
