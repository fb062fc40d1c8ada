"""Activation functions: each an ``(f, f_prime)`` pair in one registry.

``f(xp, z)`` returns the activation ``a = σ(z)``; ``f_prime(xp, z, a)`` returns ``σ'(z)``, using the
saved activation ``a`` where the maths allows (``a * (1 - a)`` for the sigmoid), which saves
recomputing an exponential in backpropagation. Only Array API functions are used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..checks import check_choice

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """A named activation function and its derivative."""

    name: str
    f: Callable[[Any, Any], Any]
    f_prime: Callable[[Any, Any, Any], Any]


def _sigmoid(xp, z):
    # 1 / (1 + e^-z) written through tanh: no overflow for large |z| and one kernel fewer.
    return 0.5 * xp.tanh(0.5 * z) + 0.5


def _sigmoid_prime(xp, z, a):
    return a * (1.0 - a)


def _relu(xp, z):
    return xp.maximum(z, 0.0)


def _relu_prime(xp, z, a):
    return xp.astype(z > 0.0, z.dtype)


def _leaky_relu(xp, z):
    return xp.where(z > 0.0, z, 0.01 * z)


def _leaky_relu_prime(xp, z, a):
    return 0.99 * xp.astype(z > 0.0, z.dtype) + 0.01


def _tanh(xp, z):
    return xp.tanh(z)


def _tanh_prime(xp, z, a):
    return 1.0 - a * a


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("sigmoid", _sigmoid, _sigmoid_prime),
        Activation("relu", _relu, _relu_prime),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_prime),
        Activation("tanh", _tanh, _tanh_prime),
    )
}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by its exact name (a near miss gets a suggestion)."""
    if isinstance(name, Activation):
        return name
    return ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]
