"""Running out of memory: one clear error naming the phase, whatever library ran out."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import DeviceMemoryError

if TYPE_CHECKING:
    from .base import Backend

__all__ = ["is_out_of_memory", "memory_phase", "describe_bytes"]


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocation failure of any backend (``MemoryError`` and its subclasses, the
    error types the entries name, a RuntimeError saying "out of memory"), judged without
    importing the libraries."""
    if isinstance(exc, MemoryError):
        return True
    from .registry import LIBRARIES

    names = {n for entry in LIBRARIES.values() for n in entry.out_of_memory_errors}
    return type(exc).__name__ in names or (
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
