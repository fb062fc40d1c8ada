"""The monitored value, the one rule for "has it improved", and early stopping.

A run watches one value per epoch (``monitor``): the validation accuracy, the validation cost
or the training cost. :class:`Monitor` reads it from an epoch's record and says whether it
improves on the best so far (by more than ``min_delta``); early stopping (here) and the plateau
schedule (:mod:`portamlp.training.schedules`) both use that rule.

:class:`EarlyStopping` keeps the best parameters as device copies (no host transfer) and
restores them at the end unless ``restore_best=False``. Its state is plain data plus those
copies, saved in checkpoints.
"""

from __future__ import annotations

from typing import Any

from ..checks import check_choice

__all__ = ["MONITORS", "MONITOR_ALIASES", "check_monitor", "Monitor", "EarlyStopping"]

#: The values a run can watch (fields of :class:`~portamlp.EpochRecord`).
MONITORS = ("validation_accuracy", "validation_cost", "train_cost")
#: Earlier names, still accepted.
MONITOR_ALIASES = {"validation_loss": "validation_cost", "train_loss": "train_cost"}


def check_monitor(name: str, value: Any) -> str:
    """One of :data:`MONITORS` (an earlier name is accepted and translated)."""
    if isinstance(value, str) and value in MONITOR_ALIASES:
        return MONITOR_ALIASES[value]
    return check_choice(name, value, MONITORS)


class Monitor:
    """The monitored value of a run and the rule for an improvement.

    Parameters
    ----------
    name : str
        One of :data:`MONITORS`.
    min_delta : float
        The least change that counts as an improvement.
    """

    def __init__(self, name: str, min_delta: float = 0.0):
        self.name = check_monitor("monitor", name)
        self.min_delta = min_delta
        #: Accuracy is better higher, a cost lower.
        self.higher_is_better = self.name == "validation_accuracy"

    def value(self, record: Any) -> float:
        """The monitored value of an :class:`~portamlp.EpochRecord`."""
        return float(getattr(record, self.name))

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` (None: nothing yet) by more than ``min_delta``."""
        if best is None:
            return True
        if self.higher_is_better:
            return value > best + self.min_delta
        return value < best - self.min_delta


class EarlyStopping:
    """Early stopping over a run: stop after ``patience`` epochs without improvement.

    ``copy(params)`` (given to :meth:`update`) makes device copies of the parameters.
    """

    def __init__(self, monitor: Monitor, patience: int, restore_best: bool):
        self.monitor, self.patience, self.restore_best = monitor, patience, restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_parameters: list | None = None

    def update(self, epoch: int, value: float, parameters: list, copy) -> bool:
        """Take an epoch's monitored value; return True when training should stop."""
        if self.monitor.improves(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_parameters = copy(parameters)
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self, parameters: list, write) -> bool:
        """Write the best parameters back into the list ``parameters`` (through the backend's
        write-through helper ``write``); True if it did."""
        if not self.restore_best or self.best_parameters is None:
            return False
        for i, best in enumerate(self.best_parameters):
            parameters[i] = write.assign(parameters[i], best)
        return True

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state: dict[str, Any], best_parameters: list | None) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.best_parameters = best_parameters
