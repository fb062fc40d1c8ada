"""Early stopping: watch one figure per epoch, keep the best weights, stop after ``patience``.

The figure is the validation accuracy, the validation loss or the training loss
(``monitor``); an epoch improves on the best when it beats it by more than ``min_delta``. The best
parameters are kept as device copies (no host transfer), restored in place at the end unless
``restore_best=False``. The state is plain data plus those copies, saved in checkpoints.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MONITORS", "EarlyStopping", "monitored_figure", "higher_is_better"]

#: Figures early stopping and the plateau schedule can watch.
MONITORS = ("validation_accuracy", "validation_loss", "train_loss")


def higher_is_better(monitor: str) -> bool:
    return monitor == "validation_accuracy"


def monitored_figure(record: Any, monitor: str) -> float:
    """The monitored figure of an :class:`~portamlp.config.EpochRecord`."""
    return float(getattr(record, monitor))


class EarlyStopping:
    """Early stopping over a run; ``copy(params)`` makes device copies of the parameters."""

    def __init__(self, monitor: str, patience: int, min_delta: float, restore_best: bool):
        self.monitor, self.patience = monitor, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_parameters: list | None = None

    def update(self, epoch: int, record: Any, parameters: list, copy) -> bool:
        """Take an epoch's record; return True when training should stop."""
        figure = monitored_figure(record, self.monitor)
        better = higher_is_better(self.monitor)
        if self.best is None or (figure > self.best + self.min_delta if better
                                 else figure < self.best - self.min_delta):
            self.best, self.best_epoch, self.wait = figure, epoch, 0
            if self.restore_best:
                self.best_parameters = copy(parameters)
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self, parameters: list) -> bool:
        """Write the best parameters back into ``parameters`` in place; True if it did."""
        if not self.restore_best or self.best_parameters is None:
            return False
        for p, best in zip(parameters, self.best_parameters):
            p[...] = best
        return True

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state: dict[str, Any], best_parameters: list | None) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.best_parameters = best_parameters
