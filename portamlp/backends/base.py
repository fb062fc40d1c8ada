"""What a backend entry knows about its array library, and the :class:`Backend` it makes.

A backend entry is a module of ``portamlp/backends/`` that defines ``LIBRARY``, an instance of
a :class:`Library` subclass. The entry holds everything portamlp knows about one library: how
to recognise its arrays, its Array API namespace, how a device is written and found, moving
arrays to and from the host, the device context, waiting for queued work, whether its arrays
can be written in place, how to install it. Nothing outside ``portamlp/backends/`` names an
array library; it asks the entries.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..checks import check_dtype, is_integer
from .writes import Writer, writer

__all__ = ["Library", "Backend", "BackendStatus", "parse_device", "device_name",
           "namespace_with"]


class Library:
    """Everything portamlp knows about one array library (override what differs).

    The defaults serve a library that implements the standard as it is written: its
    namespace is ``array_api_compat.<module>`` (or the library itself when it has
    ``__array_api_version__``), devices come from ``__array_namespace_info__()``, arrays reach
    the host through DLPack or ``__array__``, and there is no device context.
    """

    #: The backend's name, as ``get_backend`` and ``train(backend=...)`` take it.
    name: str = ""
    #: The top-level module its array types come from (``type(a).__module__``'s first part).
    module: str = ""
    #: What to run when it is missing.
    install: str = ""
    #: Package distributions whose versions run records list.
    distributions: tuple[str, ...] = ()
    #: Whether its arrays can be written in place (False: every write makes a new array; see
    #: :mod:`portamlp.backends.writes`).
    in_place: bool = True
    #: Whether its arrays are computed lazily (a task graph, as Dask's): then the training loop
    #: has each step's results computed and stored (:meth:`settle`).
    lazy: bool = False
    #: ``get_backend("auto")`` takes the usable entry with the highest priority (None: never).
    auto_priority: int | None = None
    #: Where the cross-backend tests run it (``None``: the default device).
    test_devices: tuple[Any, ...] = (None,)
    #: Position in listings (``available_backends()``, the docs).
    order: int = 100

    @property
    def writes(self) -> Writer:
        """The write-through helper for its arrays (:mod:`portamlp.backends.writes`): in place
        when :attr:`in_place`, else new arrays."""
        return writer(self.in_place)

    # -- the library and its namespace
    def native(self) -> Any:
        """The library itself (``import cupy``): for the code that needs more than its Array
        API namespace. The only place a GPU library is imported."""
        return importlib.import_module(self.module)

    def namespace(self) -> Any:
        """The Array API namespace portamlp computes with."""
        native = self.native()
        if hasattr(native, "__array_api_version__"):
            return native
        return importlib.import_module(f"array_api_compat.{self.module}")

    def probe(self) -> str | None:
        """None when the library is usable here, else the reason it is not."""
        try:
            self.namespace()
        except ImportError as exc:
            return f"{(exc.name or self.module).split('.')[0]} is not installed"
        return None

    def dtype_problem(self, dtype: str) -> str | None:
        """Why the library cannot compute in ``dtype`` ("float32", "float64") here, or None."""
        return None

    def install_hint(self, reason: str) -> str:
        """What to run for ``reason``: the library's own install, or the install of another
        package it needs (array-api-compat's, for NumPy's namespace)."""
        missing = re.match(r"^([\w.]+) is not installed", reason)
        if missing and missing.group(1).lower() not in (self.module, self.name):
            return f"pip install {missing.group(1).replace('_', '-')}"
        return self.install

    # -- its arrays
    def owns(self, array: Any) -> bool:
        """True for an array of this library."""
        return type(array).__module__.split(".")[0] == self.module

    def device_of(self, array: Any) -> Any:
        """The device an array lives on, in the library's own terms."""
        from array_api_compat import device

        return device(array)

    def to_host(self, array: Any) -> np.ndarray:
        """A NumPy copy (or view) of an array of this library, on the host."""
        try:
            return np.from_dlpack(array)
        except (TypeError, AttributeError, RuntimeError, BufferError, ValueError):
            pass
        host = np.asarray(array)
        if host.dtype == object:
            raise TypeError(f"arrays of {self.module} cannot be copied to the host: they "
                            "support neither DLPack (__dlpack__) nor __array__")
        return host

    def from_host(self, xp: Any, host: np.ndarray, dtype: Any, device: Any) -> Any:
        """``host`` (a NumPy array) as an array of this library on ``device``."""
        return xp.asarray(host, dtype=dtype, device=device)

    # -- devices
    def resolve_device(self, xp: Any, device: Any) -> Any:
        """A user's device (None, a name, a native device) as a native device."""
        info = xp.__array_namespace_info__()
        if device is None:
            return info.default_device()
        devices = list(info.devices())
        for d in devices:
            if device == d or (isinstance(device, str) and device_name(d) == device):
                return d
        names = [device_name(d) for d in devices]
        from ..checks import suggestion

        raise ValueError(f"device={device!r} is not one of {self.name}'s devices {names}"
                         f"{suggestion(device, names)}")

    def device_spec(self, device: Any) -> Any:
        """The device as plain data that ``get_backend(name, spec)`` takes back (pickling,
        model files): a name, an index or None."""
        return device_name(device)

    def device_context(self, device: Any) -> contextlib.AbstractContextManager | None:
        """A context manager making ``device`` current, for libraries that create arrays on
        a current device (CuPy); None for those that honour ``device=``."""
        return None

    def synchronize(self, device: Any) -> None:
        """Wait until the work queued on ``device`` has finished (a no-op on the CPU)."""

    def is_gpu(self, device: Any) -> bool:
        """Whether ``device`` is a CUDA device (its buffers may go to a CUDA-aware MPI)."""
        return False

    def gpu_count(self) -> int:
        """How many CUDA devices the library sees."""
        return 0

    #: Exception class names (besides ``MemoryError`` and its subclasses) that mean the
    #: library ran out of memory.
    out_of_memory_errors: tuple[str, ...] = ()

    def settle(self, arrays: list) -> list:
        """``arrays`` computed and stored, for a lazy library: without it each training step's
        arrays would hold the graph of every step before, and steps would grow slower and
        slower. Eager libraries return them unchanged."""
        return arrays

    def compute_limits(self, layers: Any, batch_size: int,
                       threads: int | None) -> contextlib.AbstractContextManager:
        """Limits held while a run trains (NumPy: its BLAS threads); none by default."""
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return f"<portamlp backend entry {self.name!r}>"


def device_name(device: Any) -> Any:
    """A device's plain name: ``array_api_strict.Device('device1')`` -> ``'device1'``."""
    match = re.match(r"^.*\('(.*)'\)$", repr(device))
    return match.group(1) if match else str(device)


@dataclass(frozen=True, eq=False)
class Backend:
    """An array namespace and the device the computation runs on.

    Attributes
    ----------
    library : Library
        The backend entry: everything portamlp knows about the array library.
    xp : module
        The Array API namespace (through ``array-api-compat`` where the library needs it).
    device : object
        The device arrays are created on, in the namespace's own terms.
    """

    library: Library
    xp: Any
    device: Any

    @property
    def name(self) -> str:
        """The backend's name: ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``,
        or the module name of a library served by the generic entry."""
        return self.library.name

    @property
    def in_place(self) -> bool:
        """Whether arrays of this backend are written in place (see
        :mod:`portamlp.backends.writes`)."""
        return self.library.in_place

    @property
    def writes(self) -> Writer:
        """The write-through helper for this backend's arrays (:mod:`.writes`)."""
        return self.library.writes

    def activate(self) -> contextlib.AbstractContextManager:
        """A context manager in which the backend's device is the current device."""
        return self.library.device_context(self.device) or contextlib.nullcontext()

    def dtype(self, dtype: Any) -> Any:
        """The namespace's floating dtype for ``"float32"``/``"float64"`` (or any dtype object of
        that name, e.g. ``numpy.float64``); ``None`` means float32. A dtype the library cannot
        compute in here is a ValueError that says why (JAX's float64 without its 64-bit mode)."""
        name = check_dtype(dtype)
        problem = self.library.dtype_problem(name)
        if problem is not None:
            raise ValueError(problem)
        return getattr(self.xp, name)

    def asarray(self, host_array: Any, dtype: Any = None) -> Any:
        """Move a host (NumPy-compatible) array to this backend's device, optionally casting it."""
        if dtype is not None:
            dtype = self.dtype(dtype)
        with self.activate():
            return self.library.from_host(self.xp, host_array, dtype, self.device)

    def to_numpy(self, array: Any) -> np.ndarray:
        """Copy an array of this backend (or any supported library) to a NumPy array on the host."""
        if self.library.owns(array):
            return self.library.to_host(array)
        from . import to_numpy  # the package's: any library

        return to_numpy(array)

    def same_device(self, array: Any) -> bool:
        """True if ``array`` belongs to this backend's library and lives on its device."""
        return self.library.owns(array) and self.library.device_of(array) == self.device

    def synchronize(self) -> None:
        """Wait until the work queued on the device has finished."""
        self.library.synchronize(self.device)

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"


class BackendStatus(NamedTuple):
    """Whether a backend works here; true when usable, else ``reason`` says why not."""

    usable: bool
    reason: str

    def __bool__(self) -> bool:
        return self.usable


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


def namespace_with(module_name: str, doc: str, overrides: dict[str, Callable]) -> Any:
    """A copy of a namespace module with some functions replaced (faster equivalents)."""
    compat = importlib.import_module(module_name)
    ns = types.ModuleType(f"portamlp.backends.{module_name.rsplit('.', 1)[-1]}_namespace", doc)
    ns.__dict__.update({k: v for k, v in vars(compat).items()
                        if not k.startswith("__") or k == "__array_api_version__"})
    ns.__dict__.update(overrides)
    return ns
