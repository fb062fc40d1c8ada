"""Learning-rate schedules: the rate of each epoch (1-based) of a run of ``epochs`` epochs.

* ``"constant"``: the rate throughout;
* ``"cosine"``: half a cosine from the rate in the first epoch down towards 0 in the last;
* ``"step"``: multiplied by ``decay_factor`` every ``decay_every`` epochs;
* ``"plateau"``: multiplied by ``decay_factor`` after ``plateau_patience`` epochs without
  improvement of the monitored value (scikit-learn's "adaptive", Keras's ReduceLROnPlateau),
  by the same rule as early stopping (:class:`~portamlp.training.stopping.Monitor`);
* any callable ``epoch -> rate``.

``warmup_epochs`` ramps the rate up linearly over the first epochs (``rate * e / warmup`` in
epoch ``e``); the schedule then runs over the remaining epochs. The state (the plateau's) is
plain data, saved in checkpoints, so a schedule survives resume exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .stopping import Monitor

__all__ = ["SCHEDULES", "LearningRate"]

#: Named schedules that depend only on the epoch: ``schedule(rate, epoch, epochs, config)``.
_BY_EPOCH: dict[str, Callable[[float, int, int, Any], float]] = {
    "constant": lambda rate, e, n, s: rate,
    "cosine": lambda rate, e, n, s: 0.5 * rate * (1.0 + math.cos(math.pi * (e - 1) / n)),
    "step": lambda rate, e, n, s: rate * s.decay_factor ** ((e - 1) // s.decay_every),
}
#: The names ``learning_rate_schedule`` accepts (besides a callable).
SCHEDULES = (*_BY_EPOCH, "plateau")


class LearningRate:
    """The learning rate of each epoch of one run (``config`` is its TrainConfig)."""

    def __init__(self, config: Any):
        self.config = config
        self.schedule = config.learning_rate_schedule
        self.monitor = Monitor(config.monitor, config.min_delta)
        #: plateau state: reductions so far, best monitored value, epochs without improvement
        self.reductions, self.wait = 0, 0
        self.best: float | None = None

    def rate(self, epoch: int) -> float:
        """The rate for ``epoch`` (1-based)."""
        s = self.config
        base, warmup = s.learning_rate, s.warmup_epochs
        if epoch <= warmup:
            return base * epoch / warmup
        if callable(self.schedule):
            return self._checked(self.schedule(epoch), epoch)
        if self.schedule == "plateau":
            return base * s.decay_factor ** self.reductions
        return _BY_EPOCH[self.schedule](base, epoch - warmup, max(1, s.epochs - warmup), s)

    def _checked(self, value: Any, epoch: int) -> float:
        try:
            rate = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"learning_rate_schedule returned {value!r} for epoch {epoch}; it "
                            "must return a number") from None
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"learning_rate_schedule returned {value!r} for epoch {epoch}; it "
                             "must return a finite rate > 0")
        return rate

    @property
    def watches(self) -> bool:
        """Whether the schedule reads the monitored value."""
        return self.schedule == "plateau"

    def observe(self, value: float) -> None:
        """After an epoch: the monitored value (for ``"plateau"``)."""
        if self.schedule != "plateau":
            return
        if self.monitor.improves(value, self.best):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.config.plateau_patience:
            self.reductions += 1
            self.wait = 0

    def state(self) -> dict[str, Any]:
        return {"reductions": self.reductions, "best": self.best, "wait": self.wait}

    def load_state(self, state: dict[str, Any]) -> None:
        self.reductions = int(state.get("reductions", 0))
        self.best = state.get("best")
        self.wait = int(state.get("wait", 0))

