"""Activation functions: one registry entry each, carrying everything about itself.

An :class:`Activation` holds its function ``f(xp, z)`` (the activation ``a = σ(z)``), its
derivative ``f_prime(xp, z, a)`` (``σ'(z)``, from the saved activation ``a`` where the maths
allows: ``a * (1 - a)`` for the sigmoid, which saves recomputing an exponential), the initial
weights that suit it, and, when it has one, its code for CuPy's fused kernels. Only Array API
functions are used.

Adding an activation is adding an entry to :data:`ACTIVATIONS` (``ACTIVATIONS.register(...)``):
``train(activation=...)``, ``Network``, the command line, TOML files, both model file formats,
the scikit-learn estimator and the documentation's options table all read the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Registry
from .init import INITS

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]


@dataclass(frozen=True)
class Activation:
    """A named activation function, its derivative, and what else portamlp needs of it.

    Attributes
    ----------
    name : str
        Its name in options and files (``"relu"``).
    f : callable
        ``f(xp, z) -> a``, elementwise, Array API functions only.
    f_prime : callable
        ``f_prime(xp, z, a) -> σ'(z)``, given both ``z`` and ``a = f(z)``.
    init : str
        The initialisation ``init="auto"`` uses with it (an entry of
        :data:`portamlp.nn.init.INITS`).
    kernel_f, kernel_f_prime : str or None
        Its code in CuPy's fast step (:mod:`portamlp.fast`): C expressions of type ``real``
        (``float`` or ``double``), ``kernel_f`` in ``z`` and ``kernel_f_prime`` in ``a``
        *only*: the fused kernels keep the activations, not the ``z``, so an activation whose
        derivative cannot be written from ``a`` has no kernel code. Without it (None), a run
        with this activation takes the portable Array-API step, and ``fast_path="on"`` says why.
    """

    name: str
    f: Callable[[Any, Any], Any]
    f_prime: Callable[[Any, Any, Any], Any]
    init: str = "glorot"
    kernel_f: str | None = None
    kernel_f_prime: str | None = None

    @property
    def has_kernel(self) -> bool:
        """Whether the fast step's kernels can compute it."""
        return self.kernel_f is not None and self.kernel_f_prime is not None


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


def _identity(xp, z):
    return z


def _identity_prime(xp, z, a):
    return xp.ones_like(z)


def _check(entry: Any) -> None:
    """An activation that could not work is refused when it is registered, not in training."""
    if not isinstance(entry, Activation):
        raise TypeError(f"an activation entry is an Activation, got {type(entry).__name__}")
    for name, n in (("f", 2), ("f_prime", 3)):
        fn = getattr(entry, name)
        try:
            inspect.signature(fn).bind(*range(n))
        except TypeError:
            args = "(xp, z)" if n == 2 else "(xp, z, a)"
            raise TypeError(f"activation {entry.name!r}: {name} must be a function {name}{args}, "
                            f"got {fn!r}") from None
        except ValueError:  # no signature to read (a builtin): trust it
            pass
    if entry.init not in INITS:
        raise ValueError(f"activation {entry.name!r}: init={entry.init!r} is not an "
                         f"initialisation; choose one of {list(INITS)}")
    if (entry.kernel_f is None) != (entry.kernel_f_prime is None):
        raise ValueError(f"activation {entry.name!r}: give both kernel_f and kernel_f_prime, "
                         "or neither")


#: The activations, by name.
ACTIVATIONS: Registry[Activation] = Registry("activation", (
    # N(0, 1/n_in) weights: Nielsen's chapter 3 choice; N(0, 1) (chapter 1, the original
    # program) saturates wider layers (784-100-10, one epoch at η = 3.0: 67 % against 95 %;
    # bench/defaults.py)
    Activation("sigmoid", _sigmoid, _sigmoid_prime, init="scaled",
               kernel_f="(real)0.5 * tanh((real)0.5 * z) + (real)0.5",
               kernel_f_prime="a * ((real)1 - a)"),
    Activation("relu", _relu, _relu_prime, init="he",
               kernel_f="z > (real)0 ? z : (real)0",
               kernel_f_prime="a > (real)0 ? (real)1 : (real)0"),
    Activation("leaky_relu", _leaky_relu, _leaky_relu_prime, init="he",
               kernel_f="z > (real)0 ? z : (real)0.01 * z",
               kernel_f_prime="(real)0.99 * (a > (real)0 ? (real)1 : (real)0) + (real)0.01"),
    Activation("tanh", _tanh, _tanh_prime, init="glorot",
               kernel_f="tanh(z)", kernel_f_prime="(real)1 - a * a"),
    # linear hidden units (scikit-learn's "identity"): the network is then a linear model
    Activation("identity", _identity, _identity_prime, init="glorot",
               kernel_f="z", kernel_f_prime="(real)1"),
), check=_check)


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by its exact name (a near miss gets a suggestion)."""
    if isinstance(name, Activation):
        return name
    return ACTIVATIONS.lookup(name)
