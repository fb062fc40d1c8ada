"""Initial weights: one registry entry per initialisation, drawn on the host.

The Array API has no random module, so initial weights are drawn here with
``numpy.random.default_rng`` and moved to the device once: one seed gives the same network on
every backend. Draws are in float64, then cast to the training dtype, so the same seed gives
the same float64 weights whatever the dtype.

``init="auto"`` takes the initialisation the activation's entry names
(:attr:`portamlp.nn.activations.Activation.init`), which the caller passes as ``auto``. Adding
an initialisation is adding an entry to :data:`INITS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..registry import Registry

__all__ = ["Initialisation", "INITS", "AUTO", "init_names", "initial_parameters", "make_rng"]

#: The name that picks the activation's own initialisation.
AUTO = "auto"


@dataclass(frozen=True)
class Initialisation:
    """A way to draw a layer's weights ``(n_out, n_in)`` and biases ``(n_out,)``.

    ``draw(rng, n_in, n_out)`` returns both in float64; ``help`` says what they are.
    """

    name: str
    draw: Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]
    help: str


def _normal(rng, n_in, n_out):
    return rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)


def _scaled(rng, n_in, n_out):
    w, b = _normal(rng, n_in, n_out)
    return w / np.sqrt(n_in), b


def _glorot(rng, n_in, n_out):
    w, b = _normal(rng, n_in, n_out)
    return w * np.sqrt(2.0 / (n_in + n_out)), np.zeros_like(b)


def _he(rng, n_in, n_out):
    w, b = _normal(rng, n_in, n_out)
    return w * np.sqrt(2.0 / n_in), np.zeros_like(b)


#: The initialisations, by name (``"auto"`` is not one: it names the activation's choice).
INITS: Registry[Initialisation] = Registry("init", (
    Initialisation("normal", _normal, "weights and biases N(0, 1) (Nielsen's chapter 1, the "
                                      "original program)"),
    Initialisation("scaled", _scaled, "weights N(0, 1/n_in), biases N(0, 1)"),
    Initialisation("glorot", _glorot, "weights N(0, 2/(n_in + n_out)), zero biases"),
    Initialisation("he", _he, "weights N(0, 2/n_in), zero biases"),
))


def init_names() -> tuple[str, ...]:
    """The values ``init=`` takes: ``"auto"`` and the registered initialisations."""
    return (AUTO, *INITS)


def make_rng(seed: Any) -> np.random.Generator:
    """A NumPy generator from a seed (or the generator itself)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def initial_parameters(layers, init: str, rng: np.random.Generator, dtype: str, *,
                       auto: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights ``(n_out, n_in)`` and biases ``(n_out,)`` drawn layer by layer, weights first,
    by the initialisation ``init`` (``"auto"``: ``auto``, the activation's own), cast to
    ``dtype``."""
    from ..checks import check_choice

    name = check_choice("init", init, init_names())
    entry = INITS.lookup(auto if name == AUTO else name)
    weights, biases = [], []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        w, b = entry.draw(rng, n_in, n_out)
        weights.append(w.astype(dtype, copy=False))
        biases.append(b.astype(dtype, copy=False))
    return weights, biases
