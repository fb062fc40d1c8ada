"""Array libraries: a name or an array becomes a namespace, a device and host <-> device moves.

This package is the only part of portamlp that knows which array libraries exist. Each has an
entry, one module of its own (:mod:`.numpy`, :mod:`.cupy`, :mod:`.torch`,
:mod:`.array_api_strict`), in the manner of array-api-compat's per-library modules and Keras's
``backend/<library>/``; any other library that implements the Array API standard is served by
the generic entry (:mod:`.generic`). Everything else receives a :class:`Backend` (or an array)
and works through ``backend.xp``. Optional libraries are imported only when a backend that needs
them is asked for, so ``import portamlp`` stays light.

CuPy creates arrays and launches kernels on the *current* CUDA device, whatever ``device=``
says to some of array-api-compat's wrappers; so every computing entry point of portamlp runs
inside :meth:`Backend.activate`, which makes the backend's device current (a no-op for the
libraries that honour ``device=``).

Adding a backend: a module here defining ``LIBRARY``, an instance of a :class:`Library`
subclass that overrides what differs from the standard (see :mod:`.base`). The shared test
fixture runs it on the devices its ``test_devices`` names.
"""

from .base import Backend, BackendStatus, Library, device_name, parse_device
from .memory import describe_bytes, is_out_of_memory, memory_phase
from .registry import (
    BACKEND_NAMES,
    LIBRARIES,
    available_backends,
    backend_of,
    get_backend,
    gpu_count,
    library_for,
    library_of,
    native_library,
    synchronize_gpu,
    to_numpy,
)
from .writes import Writer, writer

__all__ = ["Backend", "BackendStatus", "Library", "LIBRARIES", "BACKEND_NAMES", "get_backend",
           "available_backends", "backend_of", "library_of", "library_for", "to_numpy",
           "is_out_of_memory", "describe_bytes", "memory_phase", "parse_device", "device_name",
           "native_library", "gpu_count", "synchronize_gpu", "Writer", "writer"]
