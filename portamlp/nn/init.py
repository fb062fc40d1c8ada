"""Host-side work that is not maths: randomness, initial weights, and per-epoch summaries.

The Array API has no random module, so initial weights and per-epoch permutations are drawn here
with ``numpy.random.default_rng`` and moved to the device once: one seed gives the same run on
every backend. Keeping NumPy's host role in this module (and in :mod:`portamlp.inputs`) leaves
:mod:`portamlp.network`, :mod:`portamlp.optim` and :mod:`portamlp.train` free of any array
library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import to_numpy
from ..checks import check_choice

__all__ = ["INITS", "make_rng", "fresh_seed", "initial_parameters", "rng_state",
           "set_rng_state", "permutation", "epoch_loss", "summary_values"]

#: Weight initialisations accepted by :meth:`portamlp.Network.initialize`.
INITS = ("auto", "normal", "scaled", "glorot", "he")
_AUTO_INIT = {"sigmoid": "normal", "relu": "he", "leaky_relu": "he", "tanh": "glorot"}


def make_rng(seed: Any) -> np.random.Generator:
    """A NumPy generator from a seed (or the generator itself)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def fresh_seed() -> int:
    """A new random seed from the operating system's entropy (recorded so a run can be rerun)."""
    entropy = np.random.SeedSequence().entropy
    assert isinstance(entropy, int)
    return entropy % (2**63)


def rng_state(rng: np.random.Generator) -> dict:
    """The generator's state as plain (JSON-ready) data."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    """Restore a state returned by :func:`rng_state`."""
    rng.bit_generator.state = state


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random order of ``n`` rows (int64, on the host)."""
    return rng.permutation(n)


def initial_parameters(layers, init: str, activation: str, rng: np.random.Generator,
                       dtype: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights ``(n_out, n_in)`` and biases ``(n_out,)`` drawn layer by layer, weights first.

    ``"normal"``: N(0, 1) weights and biases; ``"scaled"``: weights N(0, 1/n_in), biases N(0, 1);
    ``"glorot"``: weights N(0, 2/(n_in + n_out)), zero biases; ``"he"``: N(0, 2/n_in), zero
    biases; ``"auto"``: normal for sigmoid, He for (leaky) ReLU, Glorot for tanh. Draws are in
    float64, then cast to ``dtype`` ("float32" or "float64"): the same seed gives the same
    float64 weights whatever the dtype.
    """
    init = check_choice("init", init, INITS)
    if init == "auto":
        init = _AUTO_INIT[activation]
    weights, biases = [], []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        w = rng.standard_normal((n_out, n_in))
        b = rng.standard_normal(n_out)
        if init == "scaled":
            w /= np.sqrt(n_in)
        elif init == "glorot":
            w *= np.sqrt(2.0 / (n_in + n_out))
            b[:] = 0.0
        elif init == "he":
            w *= np.sqrt(2.0 / n_in)
            b[:] = 0.0
        weights.append(w.astype(dtype, copy=False))
        biases.append(b.astype(dtype, copy=False))
    return weights, biases


def epoch_loss(values) -> tuple[float, int | None]:
    """Sum of an epoch's per-batch losses (host values) in float64, and the index of the first
    non-finite one (None if all are finite)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return float(values.sum()), None
    first = int(np.argmin(finite))
    return float(values[first]), first


def summary_values(vector) -> np.ndarray:
    """A device vector of per-epoch figures, read back to the host in one transfer (float64)."""
    return to_numpy(vector).astype(np.float64)
