"""The NumPy backend entry: the CPU, with a namespace whose two hottest functions are cheaper.

NumPy trains on the host; its BLAS threads are limited while a run trains
(:mod:`portamlp.backends.threads`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from typing import Any

import numpy as np

from ..checks import is_integer
from .base import Library, namespace_with, parse_device
from .threads import limit_blas_threads

__all__ = ["NumPy", "LIBRARY"]


@functools.cache
def _namespace() -> Any:
    """``array_api_compat.numpy`` with two hot functions made cheaper.

    ``numpy.sum`` and ``numpy.take`` spend about 0.8 and 1.5 µs per call in Python-level
    argument handling before they reach C; at batch size 10 a training step makes three sums
    and two takes, about 15 % of its time. For floating arrays without ``dtype=``,
    ``numpy.add.reduce`` is the same reduction, and ``ndarray.take`` the same gather.
    """
    compat = importlib.import_module("array_api_compat.numpy")
    add_reduce, compat_sum = np.add.reduce, compat.sum

    def sum(x, /, *, axis=None, dtype=None, keepdims=False):  # noqa: A001
        if dtype is None and x.dtype.kind == "f":
            return add_reduce(x, axis=axis, keepdims=keepdims)
        return compat_sum(x, axis=axis, dtype=dtype, keepdims=keepdims)

    def take(x, indices, /, *, axis=None):
        return x.take(indices, axis=axis)

    return namespace_with("array_api_compat.numpy", _namespace.__doc__ or "",
                          {"sum": sum, "take": take})


class NumPy(Library):
    """NumPy on the CPU."""

    name = module = "numpy"
    install = "pip install numpy"
    distributions = ("numpy",)
    auto_priority = 0
    order = 0

    def native(self) -> Any:
        return np

    def namespace(self) -> Any:
        return _namespace()

    def owns(self, array: Any) -> bool:
        return isinstance(array, (np.ndarray, np.generic))

    def device_of(self, array: Any) -> Any:
        return "cpu"

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def resolve_device(self, xp: Any, device: Any) -> Any:
        if device is None or (not is_integer(device) and parse_device(device) == ("cpu", None)):
            return "cpu"
        raise ValueError(f"device={device!r} is not available for the numpy backend, which runs "
                         "on the CPU; use device='cpu' or backend='cupy' for a GPU")

    def device_spec(self, device: Any) -> Any:
        return None

    def compute_limits(self, layers: Any, batch_size: int,
                       threads: int | None) -> contextlib.AbstractContextManager:
        return limit_blas_threads(layers, batch_size, threads)


LIBRARY = NumPy()
