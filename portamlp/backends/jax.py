"""The JAX backend entry: ``jax.numpy`` arrays on JAX's devices (``cpu``, ``cuda:0``, ...).

JAX arrays cannot be written in place, so every update goes through the write-through helper
as new arrays (:mod:`portamlp.backends.writes`). JAX computes in 32 bits unless its 64-bit
mode is on (``jax.config.update("jax_enable_x64", True)`` or ``JAX_ENABLE_X64=1``): then
``dtype="float64"`` is refused, saying so, rather than trained in float32; and the class
indices portamlp keeps as int64 are int32 (the entry's namespace names int32 ``int64``, as JAX
itself would silently do, without its warning). The compiled training step is
:mod:`portamlp.fast.xla`.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from .base import Library, namespace_with, parse_device

__all__ = ["Jax", "LIBRARY", "x64_enabled"]


def x64_enabled() -> bool:
    """Whether JAX's 64-bit mode is on (imports JAX)."""
    import jax

    return bool(jax.config.read("jax_enable_x64"))


@functools.cache
def _namespace(x64: bool) -> Any:
    """``jax.numpy`` (which implements the standard itself), with ``int64`` meaning int32 when
    the 64-bit mode is off."""
    import jax.numpy as jnp

    overrides = {} if x64 else {"int64": jnp.int32}
    return namespace_with("jax.numpy", _namespace.__doc__ or "", overrides)


class Jax(Library):
    """JAX arrays, on the CPU or an accelerator."""

    name = module = "jax"
    install = 'pip install "portamlp[jax]"  (JAX for the CPU; see JAX\'s guide for GPUs)'
    distributions = ("jax", "jaxlib")
    in_place = False
    order = 4

    def native(self) -> Any:
        import jax

        return jax

    def namespace(self) -> Any:
        return _namespace(x64_enabled())

    def probe(self) -> str | None:
        try:
            import jax.numpy  # noqa: F401
        except ImportError as exc:
            return f"{(exc.name or 'jax').split('.')[0]} is not installed"
        return None

    def dtype_problem(self, dtype: str) -> str | None:
        if dtype == "float64" and not x64_enabled():
            return ("dtype='float64' on JAX needs its 64-bit mode, which is off: call "
                    "jax.config.update('jax_enable_x64', True) before creating arrays (or set "
                    "JAX_ENABLE_X64=1), or train in dtype='float32'")
        return None

    # -- its arrays (their type lives in jaxlib; JAX is imported only if the caller did)
    def owns(self, array: Any) -> bool:
        jax = sys.modules.get("jax")
        return jax is not None and isinstance(array, jax.Array)

    def device_of(self, array: Any) -> Any:
        devices = array.devices()
        return next(iter(devices)) if len(devices) == 1 else array.sharding

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def from_host(self, xp: Any, host: np.ndarray, dtype: Any, device: Any) -> Any:
        import jax

        return jax.device_put(xp.asarray(host, dtype=dtype), device)

    # -- devices
    def resolve_device(self, xp: Any, device: Any) -> Any:
        jax = self.native()
        if device is None:
            return jax.devices()[0]
        if isinstance(device, jax.Device):
            return device
        if isinstance(device, str) and device.strip().lower().startswith("gpu"):
            device = "cuda" + device.strip()[3:]
        kind, index = parse_device(device)
        platform = "gpu" if kind == "cuda" else kind
        try:
            found = jax.devices(platform)
        except RuntimeError as exc:
            raise ValueError(f"device={device!r} is not usable with jax: {exc}") from None
        if index is None:
            return found[0]
        if index >= len(found):
            raise ValueError(f"device={device!r}: jax sees {len(found)} {kind} device(s), "
                             f"numbered 0 to {len(found) - 1}")
        return found[index]

    def device_spec(self, device: Any) -> Any:
        platform = getattr(device, "platform", "cpu")
        kind = "cuda" if platform == "gpu" else platform
        return f"{kind}:{getattr(device, 'id', 0)}"

    def synchronize(self, device: Any) -> None:
        import jax

        jax.effects_barrier()

    def is_gpu(self, device: Any) -> bool:
        return getattr(device, "platform", None) == "gpu"

    def gpu_count(self) -> int:
        try:
            return len(self.native().devices("gpu"))
        except RuntimeError:
            return 0


LIBRARY = Jax()
