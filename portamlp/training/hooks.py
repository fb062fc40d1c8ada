"""The trainer's work around each epoch, as hooks on one epoch state.

After every epoch the trainer fills an :class:`EpochState` and hands it to its hooks in order:
the learning-rate schedule (:class:`Schedule`), early stopping (:class:`Stopping`), checkpoints
(:class:`Checkpointing`), the advice about a collapsed run (:class:`Collapse`) and about dead
classes (:class:`DeadClasses`), and the caller's callbacks (:class:`Callbacks`). Any hook may
ask to stop (``state.stop = True``). A hook that has state saves it in checkpoints under its
``name`` (plain data) and, for device arrays, under ``<name>.<key>`` tensors; a resumed run
gives it back.

The schedule and early stopping watch the same monitored value with the same rule for an
improvement (:class:`~portamlp.training.stopping.Monitor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PortamlpWarning, warn
from ..files.run_records import EpochRecord
from .advice import collapse_advice, collapsed, dead_class_options
from .schedules import LearningRate
from .stopping import EarlyStopping, Monitor

if TYPE_CHECKING:
    from ..files.checkpoints import RunPosition
    from ..nn.network import Network

__all__ = ["EpochState", "EpochHook", "Schedule", "Stopping", "Checkpointing", "Advice",
           "Collapse", "DeadClasses", "Callbacks"]


@dataclass
class EpochState:
    """What the hooks see after an epoch, and how they answer.

    ``record`` is what the epoch measured; ``value`` the monitored value (read when a hook
    asks); ``position`` where the run stands now (what a checkpoint saves); ``last`` whether it
    was the run's last epoch. A hook sets ``stop`` to end training after this epoch.
    """

    epoch: int
    last: bool
    record: EpochRecord
    network: Network
    monitor: Monitor
    position: RunPosition
    stop: bool = False

    @property
    def value(self) -> float:
        """The epoch's monitored value."""
        return self.monitor.value(self.record)


class EpochHook:
    """Work done around each epoch (every method is optional)."""

    #: Where a checkpoint keeps its state (None: it has none).
    name: str | None = None

    def before_epoch(self, epoch: int) -> None:
        """Before epoch ``epoch`` starts."""

    def after_epoch(self, state: EpochState) -> None:
        """After an epoch: read ``state``; set ``state.stop`` to stop."""

    def at_end(self, network: Network) -> None:
        """After the last epoch (or a stop)."""

    def state(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {}

    def arrays(self) -> dict[str, Any]:
        """Device arrays for a checkpoint, by key."""
        return {}

    def load_state(self, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Restore :meth:`state` and :meth:`arrays` from a checkpoint (arrays on the device)."""


class Schedule(EpochHook):
    """The learning rate of each epoch, set on the optimizer before it starts; the plateau
    schedule watches the monitored value after it."""

    name = "schedule"

    def __init__(self, rates: LearningRate, optimizer: Any):
        self.rates, self.optimizer = rates, optimizer

    def before_epoch(self, epoch: int) -> None:
        self.optimizer.learning_rate = self.rates.rate(epoch)

    def after_epoch(self, state: EpochState) -> None:
        if self.rates.watches:
            self.rates.observe(state.value)

    def state(self) -> dict[str, Any]:
        return self.rates.state()

    def load_state(self, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.rates.load_state(state)


class Stopping(EpochHook):
    """Early stopping: stop after ``patience`` epochs without improvement; at the end, the best
    epoch's weights (written through the backend's helper)."""

    name = "early_stopping"

    def __init__(self, stopper: EarlyStopping, copy: Callable[[list], list]):
        self.stopper, self.copy = stopper, copy

    def after_epoch(self, state: EpochState) -> None:
        if self.stopper.update(state.epoch, state.value, state.network.parameters(), self.copy):
            state.stop = True

    def at_end(self, network: Network) -> None:
        with network.backend.activate():
            self.stopper.restore(network.parameters(), network.backend.writes)

    def state(self) -> dict[str, Any]:
        return self.stopper.state()

    def arrays(self) -> dict[str, Any]:
        return {f"best.{i}": a for i, a in enumerate(self.stopper.best_parameters or [])}

    def load_state(self, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        n = len([k for k in arrays if k.startswith("best.")])
        best = [arrays[f"best.{i}"] for i in range(n)] if n else None
        self.stopper.load_state(state, best)


class Checkpointing(EpochHook):
    """A checkpoint after every epoch: ``save(position)`` writes it (with every hook's state)."""

    def __init__(self, save: Callable[[RunPosition], Any]):
        self.save = save

    def after_epoch(self, state: EpochState) -> None:
        self.save(state.position)


class Advice(EpochHook):
    """A hook that reads each epoch's record and may warn: :meth:`see` takes every epoch's
    record once more at the end of a run that stopped early (``last`` True)."""

    def __init__(self) -> None:
        self.last_record: EpochRecord | None = None

    def after_epoch(self, state: EpochState) -> None:
        self.last_record = state.record
        self.see(state.record, state.last)

    def at_end(self, network: Network) -> None:
        if self.last_record is not None:  # a run stopped early ends with this epoch
            self.see(self.last_record, last=True)

    def see(self, record: EpochRecord, last: bool) -> None:
        """Take one epoch's record (``last``: the run ends after it)."""
        raise NotImplementedError


class Collapse(Advice):
    """Warns once when the network has collapsed on the validation set (accuracy near chance,
    or one class taking most predictions; see :func:`~portamlp.training.advice.collapsed`) for
    :attr:`PATIENCE` epochs in a row or at the end of the run, naming a learning rate to try
    (and why, when the network's width makes the rate too large)."""

    PATIENCE = 2

    def __init__(self, config: Any, layers: tuple[int, ...],
                 largest_input: float | None = None) -> None:
        super().__init__()
        self.config, self.layers = config, tuple(layers)
        #: the largest magnitude in your own training inputs (unscaled inputs come first)
        self.largest_input = largest_input
        self.streak = 0
        self.warned = False
        self.costs: list[float] = []
        self.last_seen: EpochRecord | None = None

    def see(self, record: EpochRecord, last: bool) -> None:
        how = None
        if record.validation_accuracy is not None:
            how = collapsed(record.validation_accuracy, record.predicted_counts,
                            record.label_counts)
        if record is not self.last_seen:  # at_end sees the last epoch again
            self.costs.append(record.train_cost)
            self.streak = self.streak + 1 if how else 0
        self.last_seen = record
        if how and not self.warned and (self.streak >= self.PATIENCE or last):
            self.warned = True
            advice, options = collapse_advice(self.config, self.layers, self.costs,
                                              self.largest_input)
            warn(PortamlpWarning(f"after epoch {record.epoch} the network has collapsed: {how}; "
                                 f"{advice}", options=options))


class DeadClasses(Advice):
    """Warns about output classes the network never predicts on the validation set (saturated
    sigmoid outputs), once they have stayed dead for :attr:`PATIENCE` epochs or at the end of
    the run, not for a first epoch the run recovers from. The advice leaves out what the run
    already does (:func:`~portamlp.training.advice.dead_class_options`)."""

    PATIENCE = 3

    def __init__(self, config: Any, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.options = dead_class_options(config, layers)
        self.previous: list[int] = []
        self.streak = 0
        self.warned: list[int] = []

    def see(self, record: EpochRecord, last: bool) -> None:
        classes = record.never_predicted
        if record.label_counts:  # a class the validation rows do not hold shows nothing
            present = sum(1 for n in record.label_counts if n)
            classes = [c for c in classes if present > 1 and record.label_counts[c]]
        if record.validation_accuracy is not None and collapsed(
                record.validation_accuracy, record.predicted_counts, record.label_counts):
            classes = []  # a collapsed network: Collapse says what to change
        same = bool(classes) and classes == self.previous
        self.streak = self.streak + 1 if same else (1 if classes else 0)
        self.previous = classes
        if classes and classes != self.warned and (self.streak >= self.PATIENCE or last):
            self.warned = classes
            warn(PortamlpWarning(
                f"after epoch {record.epoch} the network never predicts class(es) {classes} "
                "on the validation set (saturated outputs); try {options}",
                options=self.options))


class Callbacks(EpochHook):
    """The caller's ``callback(record, network)`` functions, every one each epoch; one that
    returns ``True`` (and nothing else) stops training."""

    def __init__(self, callbacks: list[Callable]):
        self.callbacks = callbacks

    def after_epoch(self, state: EpochState) -> None:
        asked = [cb(state.record, state.network) for cb in self.callbacks]
        if any(a is True for a in asked):
            state.stop = True
