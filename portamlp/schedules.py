"""Learning-rate schedules: the rate of each epoch (1-based) of a run of ``epochs`` epochs."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["SCHEDULES"]

#: Named schedules: ``schedule(rate, epoch, epochs) -> the rate used in that epoch``.
SCHEDULES: dict[str, Callable[[float, int, int], float]] = {
    "constant": lambda rate, epoch, epochs: rate,
    # half a cosine from the full rate in the first epoch down towards 0 in the last
    "cosine": lambda rate, epoch, epochs: 0.5 * rate * (
        1.0 + math.cos(math.pi * (epoch - 1) / epochs)),
}
