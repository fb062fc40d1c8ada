"""Where arrays live: scikit-learn's array API dispatch mapped onto portamlp's backends.

With ``sklearn.set_config(array_api_dispatch=True)``, inputs from CuPy, PyTorch or
array-api-strict stay in their library and on their device, and outputs go back there; without
it, scikit-learn's validation turns every input into NumPy. These helpers name an array's place
as plain data (``("torch", "cuda:0")``), so the estimator can compare places, pickle them and
move results back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import get_config

from ..backends import Backend, backend_of, get_backend, library_for, library_of, to_numpy

__all__ = ["dispatch_enabled", "place_of", "backend_for_place", "device_spec", "namespace_of",
           "take_rows", "to_place", "host_array", "NUMPY_PLACE"]

#: The place of NumPy arrays (and lists, DataFrames, ...): the host.
NUMPY_PLACE: tuple[str, Any] = ("numpy", None)


def dispatch_enabled() -> bool:
    """True inside ``sklearn.config_context(array_api_dispatch=True)`` (or after set_config)."""
    return bool(get_config().get("array_api_dispatch", False))


def _is_device_array(x: Any) -> bool:
    if not hasattr(x, "shape"):
        return False
    library = library_for(x)
    return library is not None and library.name != "numpy"


def device_spec(backend: Backend) -> Any:
    """The backend's device as plain data that :func:`portamlp.get_backend` accepts again:
    None (NumPy), ``"cuda:0"`` / ``"cpu"`` (PyTorch), an index (CuPy), a name
    (array-api-strict)."""
    return backend.library.device_spec(backend.device)


def place_of(x: Any) -> tuple[str, Any]:
    """``(library, device spec)`` of an input as the estimator sees it: a CuPy, PyTorch or
    array-api-strict array keeps its own place only under array API dispatch; everything else
    is NumPy on the host."""
    if dispatch_enabled() and _is_device_array(x):
        return library_of(x), device_spec(backend_of(x))
    return NUMPY_PLACE


def backend_for_place(place: tuple[str, Any]) -> Backend:
    return get_backend(place[0], place[1])


def namespace_of(x: Any) -> Any:
    """The array namespace scikit-learn's validation will use for ``x`` (NumPy unless dispatch
    is on and ``x`` is a device array)."""
    if place_of(x) == NUMPY_PLACE:
        return np
    return backend_of(x).xp


def take_rows(x: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` (host indices) of a validated 2-D or 1-D array, in its own library."""
    if isinstance(x, np.ndarray):
        return x[rows]
    be = backend_of(x)
    with be.activate():
        return be.xp.take(x, be.asarray(rows.astype(np.int64)), axis=0)


def to_place(array: Any, place: tuple[str, Any]) -> Any:
    """``array`` (any supported library) moved to ``place``; NumPy for the host."""
    if place == NUMPY_PLACE:
        return to_numpy(array)
    be = backend_for_place(place)
    if be.same_device(array):
        return array
    return be.asarray(to_numpy(array))


def host_array(a: Any) -> np.ndarray:
    """A host NumPy view or copy of labels / weights from any library, list or pandas object."""
    if hasattr(a, "shape") and library_for(a) is not None:
        return to_numpy(a)
    return np.asarray(a)
