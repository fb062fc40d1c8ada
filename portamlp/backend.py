"""Backend selection: a name becomes an array namespace, a device and host <-> device moves.

This is the only module that knows which array libraries exist. Everything else receives a
:class:`Backend` (or an array) and works through ``backend.xp``, the namespace wrapped by
``array-api-compat``. Optional libraries (CuPy, PyTorch, array-api-strict) are imported only when
a backend that needs them is asked for, so ``import portamlp`` stays light.

CuPy creates arrays and launches kernels on the *current* CUDA device, whatever ``device=`` says
to some of array-api-compat's wrappers; so every computing entry point of portamlp runs inside
:meth:`Backend.activate`, which makes the backend's device current (a no-op for libraries that
honour ``device=``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .checks import check_dtype, is_integer, suggestion
from .errors import DeviceMemoryError

__all__ = ["Backend", "BackendStatus", "get_backend", "available_backends", "BACKEND_NAMES",
           "backend_of", "library_of", "to_numpy", "is_out_of_memory", "describe_bytes",
           "memory_phase", "parse_device", "native_library", "gpu_count", "synchronize_gpu"]

#: Names accepted by :func:`get_backend`, besides ``"auto"``.
BACKEND_NAMES = ("numpy", "cupy", "torch", "array_api_strict")

_INSTALL_HINTS = {
    "numpy": 'pip install numpy',
    "cupy": 'pip install "portamlp[cuda12]"  (or "portamlp[cuda13]" for CUDA 13 drivers)',
    "torch": 'pip install torch',
    "array_api_strict": 'pip install array-api-strict  (or pip install "portamlp[test]")',
}


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
    device_context : callable, optional
        ``device_context(device)`` returns a context manager that makes ``device`` the current
        one, for libraries that create arrays on a current device (CuPy). None elsewhere.
    """

    name: str
    xp: Any
    device: Any
    device_context: Callable[[Any], contextlib.AbstractContextManager] | None = None

    def activate(self) -> contextlib.AbstractContextManager:
        """A context manager in which the backend's device is the current device."""
        if self.device_context is None:
            return contextlib.nullcontext()
        return self.device_context(self.device)

    def dtype(self, dtype: Any) -> Any:
        """The namespace's floating dtype for ``"float32"``/``"float64"`` (or any dtype object of
        that name, e.g. ``numpy.float64``); ``None`` means float32."""
        return getattr(self.xp, check_dtype(dtype))

    def asarray(self, host_array: Any, dtype: Any = None) -> Any:
        """Move a host (NumPy-compatible) array to this backend's device, optionally casting it."""
        if dtype is not None:
            dtype = self.dtype(dtype)
        with self.activate():
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
        return library_of(array) == self.name and _device_of(array) == self.device

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"


class BackendStatus(NamedTuple):
    """Whether a backend works here; true when usable, else ``reason`` says why not."""

    usable: bool
    reason: str

    def __bool__(self) -> bool:
        return self.usable


def to_numpy(array: Any) -> np.ndarray:
    """Copy any supported array (NumPy, CuPy, PyTorch, array-api-strict) to a host NumPy array."""
    lib = library_of(array)
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


def library_of(array: Any) -> str:
    """Name of the library an array comes from, judged by its type's module (``"numpy"``,
    ``"cupy"``, ``"torch"``, ``"array_api_strict"``, or another module name)."""
    if isinstance(array, (np.ndarray, np.generic)):
        return "numpy"
    return type(array).__module__.split(".")[0]


def _device_of(array: Any) -> Any:
    """The device of an array, in its namespace's terms."""
    from array_api_compat import device

    return device(array)


def backend_of(array: Any) -> Backend:
    """The :class:`Backend` an existing array belongs to (its namespace and device)."""
    lib = library_of(array)
    if lib not in BACKEND_NAMES:
        raise TypeError(
            f"arrays of type {type(array).__module__}.{type(array).__name__} are not supported; "
            f"use one of {list(BACKEND_NAMES)}"
        )
    return get_backend(lib, _device_of(array))


def _with_overrides(module_name: str, doc: str, overrides: dict[str, Callable]) -> Any:
    """A copy of a namespace module with some functions replaced."""
    compat = importlib.import_module(module_name)
    ns = types.ModuleType(f"portamlp.backend.{module_name.rsplit('.', 1)[-1]}_namespace", doc)
    ns.__dict__.update({k: v for k, v in vars(compat).items()
                        if not k.startswith("__") or k == "__array_api_version__"})
    ns.__dict__.update(overrides)
    return ns


@functools.cache
def _numpy_namespace():
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

    return _with_overrides("array_api_compat.numpy", _numpy_namespace.__doc__ or "",
                           {"sum": sum, "take": take})


@functools.cache
def _torch_namespace():
    """``array_api_compat.torch`` with ``take`` as one ``index_select``.

    The compat ``take`` wraps the indices in a ``where`` for negative values: three extra kernel
    launches per call, two calls per mini-batch. portamlp's indices are never negative.
    """
    torch = importlib.import_module("torch")

    def take(x, indices, /, *, axis=None):
        return torch.index_select(x, 0 if axis is None else axis, indices)

    return _with_overrides("array_api_compat.torch", _torch_namespace.__doc__ or "",
                           {"take": take})


def _namespace(name: str) -> Any:
    """Import and return the Array API namespace for a backend name."""
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if name == "numpy":
        return _numpy_namespace()
    if name == "torch":
        return _torch_namespace()
    return importlib.import_module(f"array_api_compat.{name}")


_DEVICE_TEXT = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(device: Any) -> tuple[str, int | None]:
    """A device written as text or an integer -> ``(kind, index)``.

    ``"cpu"`` -> ``("cpu", None)``; ``"cuda"`` -> ``("cuda", None)`` (the current CUDA device);
    ``"cuda:1"`` and ``1`` -> ``("cuda", 1)``. Anything else is a ValueError: no float, no bool,
    no other spelling.
    """
    if is_integer(device):
        if device < 0:
            raise ValueError(f"device={device!r}: a CUDA device index is >= 0")
        return "cuda", int(device)
    if isinstance(device, str):
        m = _DEVICE_TEXT.match(device.strip().lower())
        if m:
            return m.group(1), (int(m.group(2)) if m.group(2) is not None else None)
    raise ValueError(f"device={device!r} is not a device; write 'cpu', 'cuda' (the current CUDA "
                     "device), 'cuda:1' or 1")


def _resolve_device(name: str, xp: Any, device: Any) -> Any:
    """Turn a user's device (None, a string, an int or a native device) into a native device."""
    if name == "numpy":
        if device is None or (not is_integer(device) and parse_device(device) == ("cpu", None)):
            return "cpu"
        raise ValueError(f"device={device!r} is not available for the numpy backend, which runs "
                         "on the CPU; use device='cpu' or backend='cupy' for a GPU")
    if name == "cupy":
        return _cupy_device(device)
    if name == "torch":
        return _torch_device(device)
    info = xp.__array_namespace_info__()
    if device is None:
        return info.default_device()
    devices = info.devices()
    for d in devices:
        if device == d or (isinstance(device, str) and repr(d) == f"{xp.__name__}.Device("
                                                                   f"{device!r})"):
            return d
    names = [re.sub(r"^.*\('(.*)'\)$", r"\1", repr(d)) for d in devices]
    raise ValueError(f"device={device!r} is not one of array_api_strict's devices {names}"
                     f"{suggestion(device, names)}")


def _cupy_device(device: Any) -> Any:
    cupy = importlib.import_module("cupy")
    if isinstance(device, cupy.cuda.Device):
        index = device.id
    elif device is None:
        index = cupy.cuda.Device().id
    else:
        kind, index = parse_device(device)
        if kind != "cuda":
            raise ValueError(f"device={device!r}: CuPy runs on CUDA devices; use backend='numpy' "
                             "for the CPU")
        if index is None:
            index = cupy.cuda.Device().id
    count = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= index < count:
        raise ValueError(f"device={device!r} does not exist: this machine has {count} CUDA "
                         f"device(s), 0 to {count - 1}")
    return cupy.cuda.Device(index)


def _torch_device(device: Any) -> Any:
    torch = importlib.import_module("torch")
    if device is None:
        dev = torch.device("cpu")
    elif isinstance(device, torch.device):
        dev = device
    else:
        kind, index = parse_device(device)
        dev = torch.device(kind) if index is None else torch.device(kind, index)
    try:
        if dev.type == "cuda" and dev.index is None:  # arrays report "cuda:0", not "cuda"
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.empty(0, device=dev)  # fails now, with a clear message, if it is unusable
    except (RuntimeError, AssertionError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not usable with torch: {exc}") from None
    return dev


def _probe(name: str) -> str | None:
    """None if the backend is usable here, else the reason it is not."""
    if name == "cupy":
        return _probe_cupy()
    try:
        _namespace(name)
        if name == "torch":
            importlib.import_module("torch")
    except ImportError as exc:
        return f"{exc.name or name} is not installed"
    return None


@functools.cache
def _probe_cupy() -> str | None:
    """CuPy is usable when a device exists *and* a matrix product and an elementwise kernel run:
    ``cupy-cuda12x`` without its CUDA libraries finds the device but fails at the first product.
    The answer is kept for the process (the probe compiles a kernel)."""
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
    try:
        a = cupy.ones((2, 2), dtype=cupy.float32)
        b = cupy.tanh(a @ a)  # cuBLAS, then a compiled elementwise kernel (NVRTC)
        float(b[0, 0])
    except Exception as exc:
        return (f"CuPy finds {count} CUDA device(s) but cannot compute ({type(exc).__name__}: "
                f"{exc}); install the CUDA libraries: pip install \"cupy-cuda12x[ctk]\" (or "
                "cupy-cuda13x[ctk])")
    return None


def available_backends() -> dict[str, BackendStatus]:
    """Which backends work here.

    Returns
    -------
    dict
        Maps each backend name to a :class:`BackendStatus` ``(usable, reason)``, true when the
        backend is usable (e.g. ``status["cupy"].reason == "CuPy is not installed"``).
    """
    out = {}
    for name in BACKEND_NAMES:
        reason = _probe(name)
        out[name] = BackendStatus(reason is None, reason or "usable")
    return out


def _usable() -> list[str]:
    return [n for n in BACKEND_NAMES if _probe(n) is None]


def get_backend(name: str | Backend | None = None, device: Any = None) -> Backend:
    """Select an array backend.

    Parameters
    ----------
    name : {"numpy", "cupy", "torch", "array_api_strict", "auto"} or Backend, optional
        ``"auto"`` picks CuPy when a CUDA device is usable, NumPy otherwise. When omitted, the
        ``PORTAMLP_BACKEND`` environment variable is read, then ``"auto"`` is used.
    device : optional
        ``"cpu"``, ``"cuda"`` (the current CUDA device), ``"cuda:1"`` or ``1``, a name of
        array-api-strict's devices (``"device1"``), or a native device object. Default: the
        library's default (for CuPy, the current device).

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        If the name or device is unknown or the backend cannot be used here; the message lists
        the usable backends and the ``pip install`` that provides the missing one.
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
            f"unknown backend {name!r}{suggestion(name, BACKEND_NAMES)}; choose one of "
            f"{list(BACKEND_NAMES) + ['auto']} (usable here: {_usable()})"
        )
    reason = _probe(name)
    if reason is not None:
        raise ValueError(
            f"backend {name!r} is not usable here: {reason}. Usable here: {_usable()}. "
            f"To install it: {_INSTALL_HINTS[name]}"
        )
    xp = _namespace(name)
    context = (lambda dev: dev) if name == "cupy" else None  # a cupy.cuda.Device is a context
    return Backend(name=name, xp=xp, device=_resolve_device(name, xp, device),
                   device_context=context)


def native_library(name: str) -> types.ModuleType:
    """The array library itself (``cupy``, ``torch``, ...), for the code that needs more than
    its Array API namespace: the one place GPU libraries are imported (``import portamlp``
    imports none)."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}{suggestion(name, BACKEND_NAMES)}")
    return importlib.import_module(name)


def gpu_count(name: str) -> int:
    """How many CUDA devices ``name`` ("cupy" or "torch") sees."""
    lib = native_library(name)
    return lib.cuda.runtime.getDeviceCount() if name == "cupy" else lib.cuda.device_count()


def synchronize_gpu(array: Any) -> None:
    """Wait for the queued kernels of the current stream of ``array``'s device (a CuPy array,
    or a PyTorch CUDA tensor) to finish, e.g. before a library outside CUDA reads it."""
    if library_of(array) == "cupy":
        native_library("cupy").cuda.get_current_stream().synchronize()
    else:
        native_library("torch").cuda.current_stream(array.device).synchronize()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure of any backend (NumPy/CuPy ``MemoryError`` subclasses,
    PyTorch's ``OutOfMemoryError``), judged without importing the libraries."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name in ("OutOfMemoryError", "OutOfMemoryException") or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


@contextlib.contextmanager
def memory_phase(phase: str, backend: Backend | None, advice: str = "",
                 needs: float | None = None, *, host: bool = False) -> Iterator[None]:
    """Turn an out-of-memory failure inside the block into one clear error naming ``phase``.

    On the device (or, for NumPy, the host as the device) the error is
    :class:`~portamlp.DeviceMemoryError`; with ``host=True`` the phase allocates host memory
    only, and the error is a ``MemoryError`` that says so. ``needs`` (bytes) and ``advice`` go
    into the message.
    """
    try:
        yield
    except DeviceMemoryError:
        raise
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        size = f" (about {describe_bytes(needs)})" if needs else ""
        advice = f"; {advice}" if advice else ""
        if host or backend is None:
            raise MemoryError(f"out of host memory during {phase}{size}{advice}") from exc
        raise DeviceMemoryError(f"out of memory during {phase} on {backend.name} "
                                f"{backend.device}{size}{advice}", phase=phase) from exc


def describe_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'`` (powers of 1000)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} PB"
