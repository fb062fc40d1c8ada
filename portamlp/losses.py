"""Costs: the value of the cost on a mini-batch and the error ``δ`` of the output layer.

* ``"quadratic"`` — ``C = ½‖a − y‖²`` averaged over the batch; the output layer uses the hidden
  activation (Nielsen's chapter 1 and the original program), so ``δᴸ = (a − y) ⊙ σ'(zᴸ)``.
* ``"cross_entropy"`` — a softmax output layer with the log-likelihood cost
  ``C = −log softmax(zᴸ)_y``; then ``δᴸ = softmax(zᴸ) − y``. Computed stably (max subtracted).

Every function takes the namespace ``xp`` first and uses only Array API functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .activations import Activation

__all__ = ["Cost", "COSTS", "get_cost", "softmax"]


def softmax(xp, z):
    """Row-wise softmax of ``z`` (shape (n, k)), stable for large inputs."""
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


@dataclass(frozen=True)
class Cost:
    """A cost: output activation, and the batch-summed value with the output-layer delta."""

    name: str
    #: ``output(xp, z, hidden_activation) -> a``: the output layer's activation.
    output: Callable[[Any, Any, Activation], Any]
    #: ``value_and_delta(xp, z, a, y, act, with_value) -> (raw value or None, δᴸ)``: one pass
    #: shares work between the two; the raw value is the batch-summed cost divided by
    #: ``value_scale`` (the training loop multiplies once per epoch instead of per batch).
    value_and_delta: Callable[..., tuple]
    value_scale: float = 1.0

    def value(self, xp, a, y):
        """The cost summed over the batch (0-d array), from output activations ``a``."""
        raw, _ = self.value_and_delta(xp, None, a, y, None, True)
        return self.value_scale * raw


def _quadratic_output(xp, z, act):
    return act.f(xp, z)


def _quadratic_value_and_delta(xp, z, a, y, act, with_value):
    d = a - y
    value = xp.sum(d * d) if with_value else None  # times value_scale = 0.5
    # act is None when only the value is wanted (Cost.value): then no delta is computed
    return value, (d * act.f_prime(xp, z, a) if act is not None else None)


def _ce_output(xp, z, act):
    return softmax(xp, z)


def _ce_value_and_delta(xp, z, a, y, act, with_value):
    if not with_value:
        return None, a - y
    # a is the softmax output; clip away exact zeros so log stays finite.
    tiny = float(xp.finfo(a.dtype).smallest_normal)
    return xp.sum(y * xp.log(xp.clip(a, tiny, None))), a - y  # times value_scale = -1


COSTS: dict[str, Cost] = {
    c.name: c
    for c in (
        Cost("quadratic", _quadratic_output, _quadratic_value_and_delta, 0.5),
        Cost("cross_entropy", _ce_output, _ce_value_and_delta, -1.0),
    )
}


def get_cost(name: str) -> Cost:
    """Look up a cost by name."""
    if isinstance(name, Cost):
        return name
    if not isinstance(name, str) or name.lower() not in COSTS:
        raise ValueError(f"unknown cost {name!r}; choose one of {sorted(COSTS)}")
    return COSTS[name.lower()]
