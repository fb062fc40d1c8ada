"""Shared fixtures: every backend-parametrised test runs once per backend usable here.

NumPy and array-api-strict always run (array-api-strict on its non-default ``device1``, which
catches arrays created on the wrong device); PyTorch when installed; CuPy when a CUDA device is
usable. The others are skipped with the reason :func:`portamlp.available_backends` gives.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import portamlp

_AVAILABLE = portamlp.available_backends()
#: (backend name, device) pairs the cross-backend tests run on.
_CASES = [("numpy", None), ("array_api_strict", "device1"), ("torch", None), ("cupy", None)]
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
