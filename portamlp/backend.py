"""Backend selection: a name becomes an array namespace, a device and host <-> device moves.

This is the only module that knows which array libraries exist. Everything else receives a
:class:`Backend` (or an array) and works through ``backend.xp``, the namespace wrapped by
``array-api-compat``. Optional libraries (CuPy, PyTorch, array-api-strict) are imported only when
a backend that needs them is asked for, so ``import portamlp`` stays light.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Backend", "get_backend", "available_backends", "BACKEND_NAMES", "backend_of",
           "is_out_of_memory", "describe_bytes"]

#: Names accepted by :func:`get_backend`, besides ``"auto"``.
BACKEND_NAMES = ("numpy", "cupy", "torch", "array_api_strict")

_INSTALL_HINTS = {
    "numpy": 'pip install numpy',
    "cupy": 'pip install "portamlp[cuda12]"  (or "portamlp[cuda13]" for CUDA 13 drivers)',
    "torch": 'pip install torch',
    "array_api_strict": 'pip install array-api-strict  (or pip install "portamlp[test]")',
}

_DTYPES = ("float32", "float64")


@dataclass(frozen=True, eq=False)
class Backend:
    """An array namespace and the device the computation runs on.

    Attributes
    ----------
    name : str
        One of ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``.
    xp : module
        The Array API namespace (through ``array-api-compat`` where the library needs it).
    device : object
        The device arrays are created on, in the namespace's own terms.
    """

    name: str
    xp: Any
    device: Any

    def dtype(self, dtype: Any) -> Any:
        """Return the namespace's floating dtype for ``"float32"``/``"float64"`` (or a dtype)."""
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(f"dtype={dtype!r} is not supported; use one of {_DTYPES}")
            return getattr(self.xp, dtype)
        if dtype is None:
            return self.xp.float32
        return dtype

    def asarray(self, host_array: Any, dtype: Any = None) -> Any:
        """Move a host (NumPy-compatible) array to this backend's device, optionally casting it."""
        if dtype is not None:
            dtype = self.dtype(dtype)
        if self.name == "array_api_strict" and isinstance(host_array, np.ndarray):
            # array-api-strict accepts NumPy input only on its default device; hop through it.
            cpu = self.xp.__array_namespace_info__().default_device()
            a = self.xp.asarray(host_array, dtype=dtype, device=cpu)
            return a if self.device == cpu else a.to_device(self.device)
        return self.xp.asarray(host_array, dtype=dtype, device=self.device)

    def to_numpy(self, array: Any) -> np.ndarray:
        """Copy an array of this backend (or any supported library) to a NumPy array on the host."""
        return to_numpy(array)

    def same_device(self, array: Any) -> bool:
        """True if ``array`` belongs to this backend's namespace and lives on its device."""
        return _library_of(array) == self.name and _device_of(array) == self.device

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"


def to_numpy(array: Any) -> np.ndarray:
    """Copy any supported array (NumPy, CuPy, PyTorch, array-api-strict) to a host NumPy array."""
    lib = _library_of(array)
    if lib == "numpy":
        return np.asarray(array)
    if lib == "cupy":
        return array.get()
    if lib == "torch":
        return array.detach().cpu().numpy()
    if lib == "array_api_strict":
        xp = importlib.import_module("array_api_strict")
        cpu = xp.__array_namespace_info__().default_device()
        return np.asarray(array.to_device(cpu))
    return np.asarray(array)


def _library_of(array: Any) -> str:
    """Name of the library an array comes from, judged by its type's module."""
    if isinstance(array, (np.ndarray, np.generic)):
        return "numpy"
    module = type(array).__module__.split(".")[0]
    return module


def _device_of(array: Any) -> Any:
    """The device of an array, in its namespace's terms."""
    from array_api_compat import device

    return device(array)


def backend_of(array: Any) -> Backend:
    """The :class:`Backend` an existing array belongs to (its namespace and device)."""
    lib = _library_of(array)
    if lib not in BACKEND_NAMES:
        raise TypeError(
            f"arrays of type {type(array).__module__}.{type(array).__name__} are not supported; "
            f"use one of {BACKEND_NAMES}"
        )
    return Backend(name=lib, xp=_namespace(lib), device=_device_of(array))


def _namespace(name: str) -> Any:
    """Import and return the Array API namespace for a backend name."""
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if name == "numpy":
        return _numpy_namespace()
    return importlib.import_module(f"array_api_compat.{name}")


@functools.cache
def _numpy_namespace():
    """``array_api_compat.numpy`` with two hot functions made cheaper.

    ``numpy.sum`` and ``numpy.take`` spend about 0.8 and 1.5 µs per call in Python-level
    argument handling before they reach C; at batch size 10 a training step makes three sums
    and two takes, about 15 % of its time. For floating arrays without ``dtype=``,
    ``numpy.add.reduce`` is the same reduction, and ``ndarray.take`` the same gather, without
    that overhead. Everything else is the compat namespace.
    """
    import types

    compat = importlib.import_module("array_api_compat.numpy")
    ns = types.ModuleType("portamlp.backend.numpy_namespace", _numpy_namespace.__doc__)
    ns.__dict__.update({k: v for k, v in vars(compat).items()
                        if not k.startswith("__") or k == "__array_api_version__"})
    add_reduce, compat_sum = np.add.reduce, compat.sum

    def sum(x, /, *, axis=None, dtype=None, keepdims=False):  # noqa: A001
        if dtype is None and x.dtype.kind == "f":
            return add_reduce(x, axis=axis, keepdims=keepdims)
        return compat_sum(x, axis=axis, dtype=dtype, keepdims=keepdims)

    def take(x, indices, /, *, axis=None):
        return x.take(indices, axis=axis)

    ns.sum = sum
    ns.take = take
    return ns


def _default_device(name: str, xp: Any) -> Any:
    if name == "numpy":
        return "cpu"
    if name == "cupy":
        return importlib.import_module("cupy").cuda.Device()
    if name == "torch":
        return importlib.import_module("torch").device("cpu")
    return xp.__array_namespace_info__().default_device()


def _resolve_device(name: str, xp: Any, device: Any) -> Any:
    """Turn a user's device (None, a string, an int or a native device) into a native device."""
    if device is None:
        return _default_device(name, xp)
    if name == "numpy":
        if device != "cpu":
            raise ValueError(f"device={device!r} is not available for the numpy backend; use 'cpu'")
        return "cpu"
    if name == "cupy":
        cupy = importlib.import_module("cupy")
        if isinstance(device, cupy.cuda.Device):
            return device
        try:
            index = int(device.split(":")[-1]) if isinstance(device, str) and ":" in device \
                else (0 if device in ("cuda", "gpu") else int(device))
        except (TypeError, ValueError):
            raise ValueError(f"device={device!r} is not a CUDA device; use 0, 1, ... or "
                             "'cuda:1'") from None
        count = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= index < count:
            raise ValueError(f"device={device!r} does not exist: this machine has {count} CUDA "
                             f"device(s), 0 to {count - 1}")
        return cupy.cuda.Device(index)
    if name == "torch":
        torch = importlib.import_module("torch")
        try:
            dev = torch.device(device)
            if dev.type == "cuda" and dev.index is None:  # arrays report "cuda:0", not "cuda"
                dev = torch.device("cuda", torch.cuda.current_device())
            torch.empty(0, device=dev)  # fails now, with a clear message, if it is unusable
        except (RuntimeError, AssertionError, TypeError) as exc:
            raise ValueError(f"device={device!r} is not usable with torch: {exc}") from None
        return dev
    devices = xp.__array_namespace_info__().devices()
    for d in devices:
        if device == d or str(device) in (str(d), repr(d), getattr(d, "_device", None)):
            return d
    raise ValueError(f"device={device!r} is not one of array_api_strict's devices {devices}")


def _probe(name: str) -> str | None:
    """Return None if the backend is usable here, else the reason it is not."""
    if name == "cupy":
        try:
            cupy = importlib.import_module("cupy")
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
        return None
    try:
        _namespace(name)
        if name == "torch":
            importlib.import_module("torch")
    except ImportError as exc:
        return f"{exc.name or name} is not installed"
    return None


def available_backends() -> dict[str, str | None]:
    """Which backends work here.

    Returns
    -------
    dict
        Maps each backend name to ``None`` when it is usable, or to a one-line reason when it
        is not (e.g. ``{"numpy": None, "cupy": "CuPy is not installed", ...}``).
    """
    return {name: _probe(name) for name in BACKEND_NAMES}


def _usable() -> list[str]:
    return [n for n, why in available_backends().items() if why is None]


def get_backend(name: str | Backend | None = None, device: Any = None) -> Backend:
    """Select an array backend.

    Parameters
    ----------
    name : {"numpy", "cupy", "torch", "array_api_strict", "auto"} or Backend, optional
        ``"auto"`` picks CuPy when a CUDA device is usable, NumPy otherwise. When omitted, the
        ``PORTAMLP_BACKEND`` environment variable is read, then ``"auto"`` is used.
    device : optional
        A device of that library (``"cpu"``, ``"cuda:1"``, ``1``, ``"device1"`` for
        array-api-strict, or a native device object). Default: the library's default device.

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        If the name is unknown or the backend cannot be used here; the message lists the usable
        backends and the ``pip install`` that provides the missing one.
    """
    if isinstance(name, Backend):
        return name if device is None else get_backend(name.name, device)
    if name is None:
        name = os.environ.get("PORTAMLP_BACKEND") or "auto"
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string such as 'numpy', got {name!r}")
    name = name.strip().lower().replace("-", "_")
    if name == "auto":
        name = "cupy" if _probe("cupy") is None else "numpy"
    if name not in BACKEND_NAMES:
        raise ValueError(
            f"unknown backend {name!r}; choose one of {list(BACKEND_NAMES) + ['auto']} "
            f"(usable here: {_usable()})"
        )
    reason = _probe(name)
    if reason is not None:
        raise ValueError(
            f"backend {name!r} is not usable here: {reason}. Usable here: {_usable()}. "
            f"To install it: {_INSTALL_HINTS[name]}"
        )
    xp = _namespace(name)
    return Backend(name=name, xp=xp, device=_resolve_device(name, xp, device))


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure of any backend (NumPy/CuPy ``MemoryError`` subclasses,
    PyTorch's ``OutOfMemoryError``), judged without importing the libraries."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name in ("OutOfMemoryError", "OutOfMemoryException") or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def describe_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'`` (powers of 1000)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} PB"
