"""The array-api-strict backend entry: the standard's reference library, with fake devices.

array-api-strict rejects whatever the standard does not define (NumPy-only idioms, mixed-kind
promotion, arrays on the wrong device), so the tests run every backend-parametrised case on it,
on its non-default ``device1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Library

__all__ = ["ArrayAPIStrict", "LIBRARY"]


class ArrayAPIStrict(Library):
    """array-api-strict, on its CPU device or one of its fake ones."""

    name = module = "array_api_strict"
    install = 'pip install array-api-strict  (or pip install "portamlp[test]")'
    distributions = ("array-api-strict",)
    test_devices = ("device1",)
    order = 3

    def to_host(self, array: Any) -> np.ndarray:
        cpu = self.native().__array_namespace_info__().default_device()
        return np.asarray(array.to_device(cpu))

    def device_of(self, array: Any) -> Any:
        return array.device

    def from_host(self, xp: Any, host: Any, dtype: Any, device: Any) -> Any:
        if not isinstance(host, np.ndarray):
            return xp.asarray(host, dtype=dtype, device=device)
        # array-api-strict accepts NumPy input only on its default device; hop through it.
        cpu = xp.__array_namespace_info__().default_device()
        a = xp.asarray(host, dtype=dtype, device=cpu)
        return a if device == cpu else a.to_device(device)


LIBRARY = ArrayAPIStrict()
