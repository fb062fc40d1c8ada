"""Costs: the value of the cost on a mini-batch and the error ``δ`` of the output layer.

* ``"quadratic"`` — ``C = ½‖a − y‖²`` averaged over the batch; the output layer uses the hidden
  activation (Nielsen's chapter 1 and the original program), so ``δᴸ = (a − y) ⊙ σ'(zᴸ)``.
* ``"cross_entropy"`` — a softmax output layer with the log-likelihood cost
  ``C = −log softmax(zᴸ)_y``; then ``δᴸ = softmax(zᴸ) − y``. Computed stably (max subtracted).

With per-sample weights ``w`` (shape (n, 1)), each sample's cost and ``δ`` are multiplied by its
weight. Every function takes the namespace ``xp`` first and uses only Array API functions; none
reads a value back to the host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..checks import check_choice
from .activations import Activation

__all__ = ["Cost", "COSTS", "get_cost", "softmax", "one_hot"]


def softmax(xp, z):
    """Row-wise softmax of ``z`` (shape (n, k)), stable for large inputs."""
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def one_hot(xp, labels, n_classes: int, dtype, device):
    """One-hot rows ``(n, n_classes)`` of ``dtype`` from int64 labels ``(n,)`` on ``device``,
    by comparison with ``arange`` (no indexing, the same on every library)."""
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device)
    return xp.astype(xp.expand_dims(labels, axis=1) == classes, dtype)


@dataclass(frozen=True)
class Cost:
    """A cost: output activation, and the batch-summed value with the output-layer delta."""

    name: str
    #: ``output(xp, z, hidden_activation) -> a``: the output layer's activation.
    output: Callable[[Any, Any, Activation], Any]
    #: ``value_and_delta(xp, z, a, y, act, with_value, weights) -> (raw value or None, δᴸ)``:
    #: one pass shares work between the two; the raw value is the batch-summed cost divided by
    #: ``value_scale`` (the training loop multiplies once per epoch instead of per batch).
    value_and_delta: Callable[..., tuple]
    value_scale: float = 1.0

    def value(self, xp, a, y, weights=None):
        """The cost summed over the batch (0-d array), from output activations ``a``."""
        raw, _ = self.value_and_delta(xp, None, a, y, None, True, weights)
        return self.value_scale * raw


def _quadratic_output(xp, z, act):
    return act.f(xp, z)


def _quadratic_value_and_delta(xp, z, a, y, act, with_value, weights=None):
    d = a - y
    if weights is not None:
        value = xp.sum(weights * (d * d)) if with_value else None
    else:
        value = xp.sum(d * d) if with_value else None  # times value_scale = 0.5
    if act is None:  # only the value is wanted (Cost.value)
        return value, None
    delta = d * act.f_prime(xp, z, a)
    return value, (delta if weights is None else delta * weights)


def _ce_output(xp, z, act):
    return softmax(xp, z)


def _ce_value_and_delta(xp, z, a, y, act, with_value, weights=None):
    if act is None:  # only the value is wanted (Cost.value)
        delta = None
    else:
        delta = a - y if weights is None else (a - y) * weights
    if not with_value:
        return None, delta
    # a is the softmax output; a floor at the smallest normal keeps log finite. ``maximum`` is
    # one kernel with no host read (array-api-compat's ``clip`` indexes with a boolean mask).
    tiny = float(xp.finfo(a.dtype).smallest_normal)
    log_a = xp.log(xp.maximum(a, tiny))
    t = y if weights is None else y * weights
    return xp.sum(t * log_a), delta  # times value_scale = -1


COSTS: dict[str, Cost] = {
    c.name: c
    for c in (
        Cost("quadratic", _quadratic_output, _quadratic_value_and_delta, 0.5),
        Cost("cross_entropy", _ce_output, _ce_value_and_delta, -1.0),
    )
}


def get_cost(name: str | Cost) -> Cost:
    """Look up a cost by its exact name (a near miss gets a suggestion)."""
    if isinstance(name, Cost):
        return name
    return COSTS[check_choice("cost", name, COSTS)]
