"""Shared fixtures: every backend-parametrised test runs once per backend usable here.

The cases are the backend entries' (``Library.test_devices``): NumPy and array-api-strict always
run (array-api-strict on its non-default ``device1``, which catches arrays created on the wrong
device); PyTorch and JAX when installed; CuPy when a CUDA device is usable. The others are
skipped with the reason :func:`portamlp.available_backends` gives.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from serve_helpers import playwright_for_chromium, trained_model  # noqa: F401 (fixtures)

import portamlp
from portamlp.backends import LIBRARIES, Backend
from portamlp.backends.numpy import NumPy
from portamlp.backends.writes import NewArrays

if importlib.util.find_spec("jax") is not None:
    # JAX computes in 32 bits unless told: the float64 cases need its 64-bit mode (the
    # refusal without it is tested with the mode switched off for the test)
    import jax

    jax.config.update("jax_enable_x64", True)

_AVAILABLE = portamlp.available_backends()
#: (backend name, device) pairs the cross-backend tests run on.
_CASES = [(name, device) for name, library in LIBRARIES.items()
          for device in library.test_devices]
if os.environ.get("PORTAMLP_TEST_BACKENDS"):
    _wanted = os.environ["PORTAMLP_TEST_BACKENDS"].split(",")
    _CASES = [c for c in _CASES if c[0] in _wanted]


def _param(name, device):
    status = _AVAILABLE[name]
    marks = [] if status.usable else [pytest.mark.skip(reason=f"{name}: {status.reason}")]
    return pytest.param((name, device), id=name, marks=marks)


@pytest.fixture(params=[_param(n, d) for n, d in _CASES])
def backend(request):
    """A :class:`portamlp.Backend` for each backend usable here."""
    name, device = request.param
    return portamlp.get_backend(name, device)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Both training dtypes, for tests where the dtype matters."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def mnist_small():
    """Host float32 MNIST subsets: 5,000 training and 1,000 test images, scaled by 1/255."""
    from portamlp.datasets import load_mnist

    x, y = load_mnist("train", backend="numpy", length=5000)
    xt, yt = load_mnist("test", backend="numpy", length=1000)
    return x, y, xt, yt


# ------------------------------------------------------------ a library without in-place updates
def _frozen(a):
    if isinstance(a, np.ndarray):
        a.flags.writeable = False
    return a


class _FreezingWriter(NewArrays):
    """New arrays, each made read-only: nothing can later write into them in place."""

    def assign(self, target, value):
        return _frozen(super().assign(target, value))

    def add(self, target, value):
        return _frozen(super().add(target, value))

    def subtract(self, target, value):
        return _frozen(super().subtract(target, value))

    def multiply(self, target, value):
        return _frozen(super().multiply(target, value))


class ReadOnlyNumPy(NumPy):
    """A test-only backend entry: NumPy whose arrays cannot be written, as JAX's cannot.

    Arrays made on the host, by the namespace's functions and by the write-through helper are
    read-only, so any update that does not go through the helper (``p -= ...``,
    ``p[...] = ...``) raises "assignment destination is read-only".
    """

    in_place = False

    def namespace(self):
        base = super().namespace()
        ns = type(base)(base.__name__, base.__doc__)
        for name, value in vars(base).items():
            if callable(value) and not isinstance(value, type) and not name.startswith("__"):
                value = self._freezing(value)
            setattr(ns, name, value)
        return ns

    @staticmethod
    def _freezing(fn):
        def call(*args, **kwargs):
            return _frozen(fn(*args, **kwargs))
        return call

    def from_host(self, xp, host, dtype, device):
        return _frozen(np.array(host, dtype=dtype, copy=True))

    @property
    def writes(self):
        return _FreezingWriter()


def read_only_backend() -> Backend:
    """A :class:`~portamlp.Backend` of :class:`ReadOnlyNumPy` (device "cpu")."""
    library = ReadOnlyNumPy()
    return Backend(library=library, xp=library.namespace(), device="cpu")
