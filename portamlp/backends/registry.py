"""The backend registry: the entries of ``portamlp/backends/``, and choosing among them.

Every module of this package that defines ``LIBRARY`` is an entry (found when the package is
first imported; adding a backend is adding its module). Arrays of a library without an entry
are served by the generic entry (:mod:`portamlp.backends.generic`).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any

import numpy as np

from ..checks import suggestion
from ..registry import Registry
from .base import Backend, BackendStatus, Library
from .generic import generic_for_array, generic_for_module, generic_for_namespace

__all__ = ["LIBRARIES", "BACKEND_NAMES", "get_backend", "available_backends", "backend_of",
           "library_of", "library_for", "to_numpy", "native_library", "gpu_count",
           "synchronize_gpu"]


def _discover() -> Registry[Library]:
    from .. import backends

    found = []
    for info in pkgutil.iter_modules(backends.__path__):
        module = importlib.import_module(f"{backends.__name__}.{info.name}")
        entry = getattr(module, "LIBRARY", None)
        if isinstance(entry, Library):
            found.append(entry)
    def check(entry: Any) -> None:
        if not isinstance(entry, Library):
            raise TypeError(f"a backend entry is an instance of a Library subclass, got "
                            f"{entry!r}")

    return Registry("backend", sorted(found, key=lambda e: (e.order, e.name)), check=check)


#: The backend entries, by name, in their listing order.
LIBRARIES: Registry[Library] = _discover()
#: Names accepted by :func:`get_backend` besides ``"auto"`` (the registered entries').
BACKEND_NAMES = tuple(LIBRARIES)


#: Generic entries made so far, by module name (so that ``get_backend(name)`` finds them).
_GENERIC: dict[str, Library] = {}


def library_for(array: Any) -> Library | None:
    """The entry whose library ``array`` comes from: a registered one, else the generic entry
    when the array implements the standard, else None (lists, scalars)."""
    for entry in LIBRARIES.values():
        if entry.owns(array):
            return entry
    if not hasattr(array, "shape"):
        return None
    module = type(array).__module__.split(".")[0]
    if module not in _GENERIC:
        try:
            entry = generic_for_array(array)
        except TypeError:
            return None
        _GENERIC[module] = _GENERIC[entry.name] = entry
    return _GENERIC[module]


def library_of(array: Any) -> str:
    """Name of the library an array comes from: its entry's name, else its type's module."""
    entry = library_for(array)
    return entry.name if entry is not None else type(array).__module__.split(".")[0]


def to_numpy(array: Any) -> np.ndarray:
    """Copy an array of any library (NumPy, CuPy, PyTorch, array-api-strict, any other that
    implements the standard) to a host NumPy array."""
    entry = library_for(array)
    return np.asarray(array) if entry is None else entry.to_host(array)


def _usable() -> list[str]:
    return [n for n, e in LIBRARIES.items() if e.probe() is None]


def _check_usable(entry: Library) -> None:
    reason = entry.probe()
    if reason is not None:
        raise ValueError(f"backend {entry.name!r} is not usable here: {reason}. Usable here: "
                         f"{_usable()}. To install it: {entry.install_hint(reason)}")


def _make(entry: Library, device: Any) -> Backend:
    _check_usable(entry)
    xp = entry.namespace()
    return Backend(library=entry, xp=xp, device=entry.resolve_device(xp, device))


def available_backends() -> dict[str, BackendStatus]:
    """Which backends work here.

    Returns
    -------
    dict
        Maps each registered backend's name to a :class:`BackendStatus` ``(usable, reason)``,
        true when the backend is usable (e.g. ``status["cupy"].reason == "CuPy is not
        installed"``).

    Examples
    --------
    >>> import portamlp
    >>> portamlp.available_backends()["numpy"]
    BackendStatus(usable=True, reason='usable')
    """
    out = {}
    for name, entry in LIBRARIES.items():
        reason = entry.probe()
        out[name] = BackendStatus(reason is None, reason or "usable")
    return out


def get_backend(name: Any = None, device: Any = None) -> Backend:
    """Select an array backend.

    Parameters
    ----------
    name : str, Backend or Array API namespace, optional
        A registered backend (``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``),
        ``"auto"`` (CuPy when a CUDA device is usable, NumPy otherwise), the module name of
        any other installed library that implements the Array API (``"dask.array"``), or a
        namespace object. When omitted, the ``PORTAMLP_BACKEND`` environment variable is read,
        then ``"auto"`` is used.
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
        return name if device is None else _make(name.library, device)
    if isinstance(name, Library):
        return _make(name, device)
    if name is None:
        name = os.environ.get("PORTAMLP_BACKEND") or "auto"
    if not isinstance(name, str):
        if hasattr(name, "__array_api_version__") or hasattr(name, "asarray"):
            return _make(generic_for_namespace(name), device)
        raise TypeError(f"backend must be a name such as 'numpy', got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key == "auto":
        ranked = sorted((e for e in LIBRARIES.values() if e.auto_priority is not None),
                        key=lambda e: -(e.auto_priority or 0))
        entry = next(e for e in ranked if e.probe() is None)
        return _make(entry, device)
    if key in LIBRARIES:
        return _make(LIBRARIES[key], device)
    generic = _GENERIC.get(name.strip()) or generic_for_module(name.strip())
    if generic is not None:
        return _make(generic, device)
    raise ValueError(
        f"unknown backend {key!r}{suggestion(key, BACKEND_NAMES)}; choose one of "
        f"{list(LIBRARIES) + ['auto']} (usable here: {_usable()}), or name an installed "
        "library that implements the Array API (e.g. 'dask.array')")


def backend_of(array: Any) -> Backend:
    """The :class:`Backend` an existing array belongs to (its library and device)."""
    entry = library_for(array)
    if entry is None:
        raise TypeError(f"arrays of type {type(array).__module__}.{type(array).__name__} are "
                        "not supported: they do not implement the Python Array API standard; "
                        f"use one of {list(LIBRARIES)} or convert with numpy.asarray(...)")
    _check_usable(entry)
    return Backend(library=entry, xp=entry.namespace(), device=entry.device_of(array))


def native_library(name: str) -> Any:
    """The array library itself (``cupy``, ``torch``, ...), for the code that needs more than
    its Array API namespace: GPU libraries are imported only through their entries
    (``import portamlp`` imports none)."""
    return LIBRARIES.lookup(name).native()


def gpu_count(name: str) -> int:
    """How many CUDA devices the library ``name`` ("cupy" or "torch") sees."""
    return LIBRARIES.lookup(name).gpu_count()


def synchronize_gpu(array: Any) -> None:
    """Wait for the queued work of ``array``'s device (a CuPy array, or a PyTorch CUDA tensor)
    to finish, e.g. before a library outside CUDA reads it."""
    entry = library_for(array)
    if entry is not None:
        entry.synchronize(entry.device_of(array))
