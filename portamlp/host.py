"""Host-side work that is not maths: randomness, initial weights, and checks of user input.

The Array API has no random module, so initial weights and per-epoch permutations are drawn here
with ``numpy.random.default_rng`` and moved to the device once: one seed gives the same run on
every backend. Keeping NumPy's host role in this module leaves :mod:`portamlp.network`,
:mod:`portamlp.optim` and :mod:`portamlp.train` free of any array library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import to_numpy

__all__ = ["make_rng", "fresh_seed", "initial_parameters", "is_integer", "is_number",
           "host_numeric", "host_labels", "never_predicted", "rng_state", "set_rng_state",
           "epoch_loss"]

_AUTO_INIT = {"sigmoid": "normal", "relu": "he", "leaky_relu": "he", "tanh": "glorot"}


def make_rng(seed) -> np.random.Generator:
    """A NumPy generator from a seed (or the generator itself)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def fresh_seed() -> int:
    """A new random seed from the operating system's entropy (recorded so a run can be rerun)."""
    return int(np.random.SeedSequence().entropy % (2**63))


def rng_state(rng: np.random.Generator) -> dict:
    """The generator's state as plain (JSON-ready) data."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.permutation(n)


def initial_parameters(layers, init: str, activation: str, rng: np.random.Generator, dtype: str):
    """Weights ``(n_out, n_in)`` and biases ``(n_out,)`` drawn layer by layer, weights first.

    ``"normal"``: N(0, 1) weights and biases; ``"scaled"``: weights N(0, 1/n_in), biases N(0, 1);
    ``"glorot"``: weights N(0, 2/(n_in + n_out)), zero biases; ``"he"``: N(0, 2/n_in), zero
    biases; ``"auto"``: normal for sigmoid, He for (leaky) ReLU, Glorot for tanh.
    """
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
        weights.append(w.astype(dtype))
        biases.append(b.astype(dtype))
    return weights, biases


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers, not for bools."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def is_number(value: Any) -> bool:
    """True for real Python and NumPy numbers, not for bools."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def host_numeric(a: Any, what: str) -> np.ndarray:
    """A host copy of a numeric array (from any supported library or nested lists)."""
    host = np.asarray(to_numpy(a) if hasattr(a, "shape") else a)
    if not (np.issubdtype(host.dtype, np.number) or host.dtype == np.bool_):
        raise TypeError(f"{what} must be a numeric array, got dtype {host.dtype}")
    return host


def host_labels(y: Any) -> np.ndarray:
    """Integer class labels on the host, as int64."""
    host = np.asarray(to_numpy(y) if hasattr(y, "shape") else y)
    if not np.issubdtype(host.dtype, np.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {host.dtype}")
    return host.astype(np.int64)


def epoch_loss(xp, losses: list) -> tuple[float, int | None]:
    """Sum of an epoch's per-batch losses (0-d device arrays) in float64 on the host, and the
    index of the first non-finite one (None if all are finite). One transfer per epoch."""
    if not losses:
        return 0.0, None
    values = to_numpy(xp.stack(losses)).astype(np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return float(values.sum()), None
    first = int(np.argmin(finite))
    return float(values[first]), first


def never_predicted(predicted, truth, n_classes: int) -> tuple[float, list[int]]:
    """Accuracy of device predictions and the classes never predicted (one host transfer)."""
    p, t = to_numpy(predicted), to_numpy(truth)
    counts = np.bincount(p, minlength=n_classes)
    return float(np.mean(p == t)), [int(c) for c in np.flatnonzero(counts == 0)]
