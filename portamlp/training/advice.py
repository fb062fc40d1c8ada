"""Advice about a run that goes wrong, written from the settings in use.

A run that collapses (near-chance accuracy, one class taking most predictions) or that leaves
classes dead (never predicted) is told what to change. The advice reads the run's own
configuration: it does not suggest an initialisation or a cost the run already uses, and it
names the learning rate when the rate is too large for the network's width.

The width rule is measured, not derived: with plain SGD (mini-batches of 10, pixels ÷255,
sigmoid or ReLU, one epoch of MNIST) a hidden layer of ``w`` units trains for learning rates up
to about ``300 / w`` and collapses to one class above a few times that (784-100-10 at η = 3.0:
95 %; 784-512-10 at 3.0: 10 %, at 0.5: 91 %; 784-1024-10 at 3.0: 10 %, at 0.25: 88 %;
784-30-10 at 10: 92 %, at 30: 9 %; ``bench/defaults.py`` reruns them). Momentum ``m``
multiplies the step by ``1 / (1 - m)``, so the bound shrinks by ``1 - m``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..nn.activations import ACTIVATIONS
from ..nn.init import AUTO
from .optimizers import OPTIMIZERS

__all__ = ["WIDTH_RATE", "UNSCALED", "rate_limit", "nice_below", "rate_advice", "collapse_advice",
           "dead_class_options", "collapsed"]

#: η × (widest hidden layer) up to which plain SGD trains (see the module's measurements).
WIDTH_RATE = 300.0
#: Own inputs larger than this in magnitude look unscaled (raw pixels, raw units): sigmoid
#: units saturate and steps overshoot (wine's raw features: 33 %, one class).
UNSCALED = 50.0
#: Initialisations that keep a sigmoid's inputs small (the dead-class advice's cure).
_SCALED_INITS = ("scaled", "glorot", "he")


def rate_limit(config: Any, layers: Sequence[int]) -> float | None:
    """The largest learning rate the widest hidden layer allows plain SGD, or None (another
    optimizer, or no hidden layer: no measured rule)."""
    if config.optimizer != "sgd" or len(layers) < 3:
        return None
    momentum = float(config.optimizer_options.get("momentum", 0.0) or 0.0)
    return WIDTH_RATE * (1.0 - momentum) / max(layers[1:-1])


def nice_below(value: float) -> float:
    """The largest of 1, 2, 2.5, 3, 5 times a power of ten that is at most ``value``."""
    power = 10.0 ** math.floor(math.log10(value))
    for step in (5.0, 3.0, 2.5, 2.0, 1.0):
        if step * power <= value * (1 + 1e-12):
            return float(f"{step * power:.12g}")
    return float(f"{power:.12g}")  # pragma: no cover - step 1.0 always fits


def rate_advice(config: Any, layers: Sequence[int]) -> tuple[float, str | None]:
    """``(a learning rate to try, why)``: below the width's limit when the run's rate exceeds
    it (``why`` names the width), else a third of the run's rate (``why`` None)."""
    rate, limit = float(config.learning_rate), rate_limit(config, layers)
    if limit is not None and rate > limit:
        width = max(layers[1:-1])
        return nice_below(limit), (f"learning_rate={rate!r} is too large for a hidden layer of "
                                   f"{width} units")
    return nice_below(rate / 3.0), None


def collapse_advice(config: Any, layers: Sequence[int], costs: Sequence[float],
                    largest_input: float | None = None) -> tuple[str, dict[str, Any]]:
    """What a collapsed run should change: ``(advice with an {options} placeholder, the
    options)``. Inputs that look unscaled (``largest_input`` over :data:`UNSCALED`) first; then
    the width's limit when the rate exceeds it; else the training costs so far (``costs``, one
    per epoch) say which way: a cost that did not fall asks for a smaller rate, one that fell for
    a larger one; with one epoch, both are offered."""
    if largest_input is not None and largest_input > UNSCALED:
        return (f"its inputs look unscaled (values up to {largest_input:.4g} in magnitude): "
                "scale them first (divide pixels by 255, or standardise each column); the "
                "learning rate cannot make up for it"), {}
    if _full_batch(config):  # no learning rate: each iteration's line search picks the step
        return ("a full-batch optimizer takes one step per epoch: try {options}, or check "
                "that the inputs are scaled (about -1 to 1)"), {"epochs": 4 * config.epochs}
    smaller, why = rate_advice(config, layers)
    if why is not None:
        return f"{why}: try {{options}}", {"learning_rate": smaller}
    rate = float(config.learning_rate)
    larger = nice_below(3.0 * rate)
    scaled = "check that the inputs are scaled (about -1 to 1), and "
    if len(costs) >= 2 and costs[-1] >= 0.98 * costs[-2]:
        return scaled + "the training cost is not falling: try {options}", \
            {"learning_rate": smaller}
    if len(costs) >= 2:
        return scaled + "the training cost falls slowly: try {options}", \
            {"learning_rate": larger}
    return (scaled + "try {options} if the training cost rose or stalled, a larger rate "
            f"({larger:g}) if it fell slowly"), {"learning_rate": smaller}


def dead_class_options(config: Any, layers: Sequence[int]) -> dict[str, Any]:
    """What to try against dead classes, leaving out what the run already does."""
    options: dict[str, Any] = {}
    init = config.init
    if init == AUTO and config.activation in ACTIVATIONS:
        init = ACTIVATIONS[config.activation].init
    if init not in _SCALED_INITS:
        options["init"] = "scaled"
    if config.cost != "cross_entropy":
        options["cost"] = "cross_entropy"
    if _full_batch(config):  # no learning rate to change: more iterations instead
        return options or {"epochs": 4 * config.epochs}
    rate, why = rate_advice(config, layers)
    if why is not None or not options:
        options["learning_rate"] = rate
    return options


def _full_batch(config: Any) -> bool:
    """Whether the run's optimizer minimises over the whole training set (L-BFGS)."""
    optimizer = OPTIMIZERS.get(getattr(config, "optimizer", ""))
    return bool(optimizer is not None and optimizer.full_batch)


def collapsed(accuracy: float, predicted: Sequence[int], labels: Sequence[int]) \
        -> str | None:
    """How a validation pass shows a collapsed network, or None: accuracy near chance (no
    better than always answering the commonest class, plus a tenth of the way to 100 %), or one
    class taking at least half of the predictions and twice its share of the labels (three
    classes or more). Validation labels of one class tell nothing (None)."""
    n = sum(labels)
    if not n or not predicted or sum(1 for c in labels if c) < 2:
        return None
    chance = max(labels) / n
    top = max(range(len(predicted)), key=lambda c: predicted[c])
    share = predicted[top] / n
    if accuracy < chance + 0.1 * (1.0 - chance):
        return (f"its validation accuracy is {accuracy:.1%}, about what always answering the "
                f"commonest class gives ({chance:.0%}), and {share:.0%} of the validation rows "
                f"go to class {top}")
    if len(predicted) >= 3 and share >= 0.5 and share >= 2 * labels[top] / n:
        return (f"{share:.0%} of the validation rows go to class {top} (which holds "
                f"{labels[top] / n:.0%} of them; accuracy {accuracy:.1%})")
    return None
