"""The generic backend entry: any other library whose arrays implement the Array API standard.

A library without an entry of its own is served through what the standard defines and
nothing else: its namespace from ``array_api_compat.array_namespace`` (or the library itself,
when it declares ``__array_api_version__``), devices from ``array_api_compat.device``, the host
through DLPack or ``__array__``. Its arrays are never assumed writable in place: every update
makes a new array (:mod:`portamlp.backends.writes`), which is right for every library, mutable
or not. A library whose arrays array-api-compat calls lazy (Dask's task graphs) has each
training step's results computed and stored through the host (:meth:`Generic.settle`), so that
the graph stays one step deep. A library the generic entry cannot serve is refused with the list
of what it lacks; nothing ever falls back to NumPy silently.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Library

__all__ = ["Generic", "REQUIRED", "KNOWN_LIBRARIES", "installed_libraries", "generic_for_array",
           "generic_for_namespace", "generic_for_module"]

#: Libraries array-api-compat recognises beyond those with an entry of their own, by name, with
#: the module ``get_backend`` takes for them.
KNOWN_LIBRARIES = {"dask": "dask.array", "ndonnx": "ndonnx",
                   "sparse": "sparse"}


def installed_libraries() -> dict[str, str]:
    """Those of :data:`KNOWN_LIBRARIES` installed here (found without importing them)."""
    import importlib.util

    return {name: module for name, module in KNOWN_LIBRARIES.items()
            if importlib.util.find_spec(name) is not None}

#: What portamlp's maths, prediction and staging call on a namespace (a test checks that
#: training and prediction call nothing else).
REQUIRED = (
    "abs", "all", "arange", "argmax", "asarray", "astype", "concat", "exp", "expand_dims",
    "finfo", "float32", "float64", "int64", "isdtype", "isfinite", "log", "logical_not",
    "matmul", "max", "maximum", "min", "minimum", "reshape", "sqrt", "stack", "sum", "take",
    "tanh", "where", "zeros", "zeros_like",
)


class Generic(Library):
    """A library served through the Array API standard alone (built on demand)."""

    in_place = False
    order = 1000

    def __init__(self, module: str, xp: Any, name: str | None = None):
        self.module = module
        self.name = name or module
        self.install = f"pip install {self.name}"
        self.distributions = (self.name,)
        self._xp = xp
        self.lazy = _is_lazy(xp)

    def namespace(self) -> Any:
        return self._xp

    def probe(self) -> str | None:
        missing = [f for f in REQUIRED if not hasattr(self._xp, f)]
        if missing:
            return (f"its Array API namespace ({getattr(self._xp, '__name__', self._xp)}) lacks "
                    f"{missing}, which portamlp computes with")
        return None

    def settle(self, arrays: list) -> list:
        if not self.lazy:
            return arrays
        return [self.from_host(self._xp, self.to_host(a), a.dtype, self.device_of(a))
                for a in arrays]

    def resolve_device(self, xp: Any, device: Any) -> Any:
        if hasattr(xp, "__array_namespace_info__"):
            return super().resolve_device(xp, device)
        default = self.device_of(xp.asarray(0.0))
        if device is None or device == default:
            return default
        raise ValueError(f"device={device!r}: {self.name} does not list its devices "
                         "(no __array_namespace_info__); leave device= out for its default")


def _is_lazy(xp: Any) -> bool:
    """Whether array-api-compat calls the namespace's arrays lazy."""
    try:
        from array_api_compat import is_lazy_array

        return bool(is_lazy_array(xp.asarray(0.0)))
    except Exception:  # an older array-api-compat, or a namespace that cannot make one
        return False


def _library_name(xp: Any) -> str:
    """A namespace's library, by name: ``dask.array`` -> ``dask``, array-api-compat's
    ``array_api_compat.dask.array`` -> ``dask``."""
    name = getattr(xp, "__name__", type(xp).__name__)
    return name.removeprefix("array_api_compat.").split(".")[0]


def generic_for_namespace(xp: Any, module: str | None = None) -> Generic:
    """The generic entry of an Array API namespace (a module such as ``array_api_strict``)."""
    name = _library_name(xp)
    return Generic(module or name, xp, name)


def generic_for_array(array: Any) -> Generic:
    """The generic entry of an array's library; TypeError when array-api-compat does not know
    it and it does not declare the standard itself."""
    from array_api_compat import array_namespace

    module = type(array).__module__.split(".")[0]
    try:
        xp = array_namespace(array)
    except TypeError:
        raise TypeError(
            f"arrays of type {type(array).__module__}.{type(array).__name__} do not implement "
            "the Python Array API standard (array-api-compat does not know them and they have "
            "no __array_namespace__); convert them to NumPy with numpy.asarray(...)") from None
    return Generic(module, xp, _library_name(xp))


def generic_for_module(name: str) -> Generic | None:
    """The generic entry of an importable library named ``name`` (``"dask.array"``), or None
    when it is not installed or not an Array API library."""
    try:
        native = importlib.import_module(name)
    except ImportError:
        return None
    if hasattr(native, "__array_api_version__"):
        return generic_for_namespace(native)
    if not callable(getattr(native, "asarray", None)):
        return None
    try:
        return generic_for_array(native.asarray(0.0))
    except Exception:
        return None
