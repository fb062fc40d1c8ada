"""The settings of a training run and what a run reports: plain, validated data."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .activations import ACTIVATIONS
from .datasets.loading import _check_scale
from .host import is_integer, is_number
from .losses import COSTS
from .network import INITS, check_layers
from .optim import OPTIMIZERS

if TYPE_CHECKING:
    from .network import Network

__all__ = ["TrainConfig", "EpochRecord", "TrainResult", "SCHEDULES"]

#: Learning-rate schedules: the rate used in each epoch (1-based) of ``epochs``.
SCHEDULES = {
    "constant": lambda rate, epoch, epochs: rate,
    # half a cosine from the full rate in the first epoch down towards 0 in the last
    "cosine": lambda rate, epoch, epochs: 0.5 * rate * (
        1.0 + math.cos(math.pi * (epoch - 1) / epochs)),
}


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (validated on construction).

    ``None`` for a length means "all that is available": for a named data set, the training split
    minus the validation rows (50,000 for MNIST), and the whole test split (10,000).
    """

    layers: tuple[int, ...] | None = None
    train_length: int | None = None
    validation_length: int | None = None
    test_length: int | None = None
    batch_size: int = 10
    epochs: int = 5
    learning_rate: float = 3.0
    learning_rate_schedule: str = "constant"
    activation: str = "sigmoid"
    cost: str = "quadratic"
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    init: str = "auto"
    dtype: str = "float32"
    dataset: str = "mnist"
    scale: Any = 255
    shuffle: bool = True
    seed: int | None = None
    threads: int | None = None

    def __post_init__(self):
        if self.layers is not None:
            object.__setattr__(self, "layers", check_layers(self.layers))
        for name in ("train_length", "validation_length", "test_length"):
            _check_int(name, getattr(self, name), minimum=0, optional=True)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("epochs", self.epochs, minimum=0)
        _check_number("learning_rate", self.learning_rate, positive=True)
        _check_number("momentum", self.momentum)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum={self.momentum!r} must lie in [0, 1)")
        _check_number("weight_decay", self.weight_decay)
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} must be >= 0")
        _check_choice("learning_rate_schedule", self.learning_rate_schedule, SCHEDULES)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("cost", self.cost, COSTS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("init", self.init, INITS)
        _check_choice("dtype", self.dtype, ("float32", "float64"))
        if not isinstance(self.nesterov, bool) or not isinstance(self.shuffle, bool):
            raise TypeError("nesterov and shuffle must be True or False")
        if self.nesterov and not self.momentum:
            raise ValueError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")
        if self.optimizer == "adam" and (self.momentum or self.nesterov):
            raise ValueError("momentum and nesterov apply to optimizer='sgd'; Adam keeps its own "
                             "moment estimates")
        if not isinstance(self.dataset, str):
            raise TypeError("dataset must be a name such as 'mnist' or a folder, got "
                            f"{self.dataset!r}")
        object.__setattr__(self, "scale", _check_scale(self.scale))
        _check_int("seed", self.seed, minimum=0, optional=True)
        _check_int("threads", self.threads, minimum=1, optional=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (JSON-ready)."""
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers) if self.layers else None
        return d


@dataclass
class EpochRecord:
    """What one epoch measured."""

    epoch: int
    seconds: float
    train_loss: float
    validation_accuracy: float | None = None
    #: Classes the network never predicted on the validation set.
    never_predicted: list[int] = field(default_factory=list)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    network: Network
    history: list[EpochRecord]
    test_accuracy: float | None
    config: TrainConfig
    #: True when a callback asked to stop before the last epoch.
    stopped_early: bool = False


def _check_int(name, value, *, minimum, optional=False):
    if value is None and optional:
        return
    if not is_integer(value):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")


def _check_number(name, value, positive=False):
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name}={value!r} must be a finite number" + (" > 0" if positive else ""))


def _check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")


