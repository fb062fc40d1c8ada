"""The forward pass, written once: every layer's activations, the output, and the class
scores the output becomes (see :mod:`portamlp.nn.network` for the notation)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .activations import Activation
from .costs import Cost

__all__ = ["layer_outputs", "forward", "class_scores"]


def class_scores(xp: Any, cost: Cost, a: Any):
    """:meth:`Network.predict_proba`'s rows from output activations ``a``: the softmax or the
    per-label probabilities as they are; another cost's independent units shifted up to be
    non-negative (only where one is negative) and divided by their sum (uniform where all are
    equal). The ONNX export runs it too."""
    if cost.output_name in ("softmax", "logistic"):
        return a
    a = a - xp.minimum(xp.min(a, axis=1, keepdims=True), 0.0)
    total = xp.sum(a, axis=1, keepdims=True)
    k = a.shape[1]
    return xp.where(total > 0, a / xp.where(total > 0, total, 1.0), 1.0 / k)


def layer_outputs(xp: Any, parameters: Sequence[Any], activation: Activation, cost: Cost,
                  x: Any) -> Iterator[Any]:
    """Each layer's activations for inputs ``x``, first hidden layer to output: ``aˡ =
    σ(aˡ⁻¹ Wˡᵀ + bˡ)``, the last layer through the cost's output function. The one forward
    pass of prediction (:func:`forward` keeps the last), of the draw-a-digit page's network
    view (:meth:`portamlp.Network.activations` keeps them all) and of the ONNX export.

    Parameters
    ----------
    xp : array namespace
    parameters : sequence of arrays
        ``[W¹, b¹, W², b², ...]``, weights of shape (n_out, n_in), in ``xp``'s arrays.
    activation : Activation
    cost : Cost
    x : array of shape (n, n_in)
    """
    a = x
    last = len(parameters) // 2 - 1
    for l in range(last + 1):
        z = a @ parameters[2 * l].T + parameters[2 * l + 1]
        a = cost.output(xp, z, activation) if l == last else activation.f(xp, z)
        yield a


def forward(xp: Any, parameters: Sequence[Any], activation: Activation, cost: Cost, x: Any):
    """The output layer's activations for inputs ``x`` (:func:`layer_outputs`' last).
    Prediction runs it on the network's arrays; :mod:`portamlp.export` runs the same function
    on ``ndonnx`` arrays to record an ONNX graph."""
    *_, output = layer_outputs(xp, parameters, activation, cost, x)
    return output
