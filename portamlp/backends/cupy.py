"""The CuPy backend entry: CUDA GPUs.

CuPy creates arrays and launches kernels on the *current* CUDA device, whatever ``device=``
says to some of array-api-compat's wrappers; so the entry's device context makes the backend's
device current, and every computing entry point of portamlp runs inside it
(:meth:`portamlp.Backend.activate`). CuPy is usable only when a device exists *and* computes:
``cupy-cuda12x`` without its CUDA libraries finds the device but fails at the first product.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from .base import Library, parse_device

__all__ = ["CuPy", "LIBRARY"]


@functools.cache
def _probe() -> str | None:
    """None when CuPy runs a matrix product and an elementwise kernel here, else why not.
    Kept for the process (the probe compiles a kernel)."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    except Exception as exc:  # a broken CUDA install can raise anything on import
        return f"CuPy failed to import: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no usable CUDA device ({exc})"
    if count < 1:
        return "no CUDA device found"
    try:
        a = cupy.ones((2, 2), dtype=cupy.float32)
        b = cupy.tanh(a @ a)  # cuBLAS, then a compiled elementwise kernel (NVRTC)
        float(b[0, 0])
    except Exception as exc:
        return (f"CuPy finds {count} CUDA device(s) but cannot compute ({type(exc).__name__}: "
                f"{exc}); install the CUDA libraries: pip install \"cupy-cuda12x[ctk]\" (or "
                "cupy-cuda13x[ctk])")
    return None


class CuPy(Library):
    """CuPy on a CUDA device."""

    name = module = "cupy"
    install = 'pip install "portamlp[cuda12]"  (or "portamlp[cuda13]" for CUDA 13 drivers)'
    distributions = ("cupy-cuda12x", "cupy-cuda13x")
    auto_priority = 1
    order = 1
    out_of_memory_errors = ("OutOfMemoryError",)

    def probe(self) -> str | None:
        return _probe()

    def to_host(self, array: Any) -> np.ndarray:
        return array.get()

    def device_of(self, array: Any) -> Any:
        return array.device

    def resolve_device(self, xp: Any, device: Any) -> Any:
        cupy = self.native()
        if isinstance(device, cupy.cuda.Device):
            index = device.id
        elif device is None:
            index = cupy.cuda.Device().id
        else:
            kind, index = parse_device(device)
            if kind != "cuda":
                raise ValueError(f"device={device!r}: CuPy runs on CUDA devices; use "
                                 "backend='numpy' for the CPU")
            if index is None:
                index = cupy.cuda.Device().id
        count = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= index < count:
            raise ValueError(f"device={device!r} does not exist: this machine has {count} CUDA "
                             f"device(s), 0 to {count - 1}")
        return cupy.cuda.Device(index)

    def device_spec(self, device: Any) -> Any:
        return int(device.id)

    def device_context(self, device: Any) -> contextlib.AbstractContextManager:
        return device  # a cupy.cuda.Device is a context manager that makes it current

    def synchronize(self, device: Any) -> None:
        with device:
            self.native().cuda.get_current_stream().synchronize()

    def is_gpu(self, device: Any) -> bool:
        return True

    def gpu_count(self) -> int:
        return int(self.native().cuda.runtime.getDeviceCount())


LIBRARY = CuPy()
